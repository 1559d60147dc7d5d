"""Key patterns every source format shares.

A batch-norm layer's state-dict entries are the same five leaves in every framework that saves
``nn.BatchNorm2d``: :data:`BN_PARAMS`, and :data:`BN_LEAF` as a regex alternative to embed in a
key pattern (non-capturing: wrap it in a group where the leaf is needed).
"""
#: The state-dict leaves of a batch-norm layer.
BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
#: :data:`BN_PARAMS` as a non-capturing regex alternative.
BN_LEAF = f'(?:{"|".join(BN_PARAMS)})'

__all__ = ['BN_LEAF', 'BN_PARAMS']
