"""mmengine checkpoints (ours, mmseg's and mmdet's zoo) -> the same weights, for safetensors.

The keys already are the model's: nothing is renamed. What changes is the container: training
state (optimizer, message hub, schedulers) stays behind, and the weights with their ``meta``
are written where ``convert.py`` is told, typically a ``.safetensors`` file, the format a
weights file can be shared in without any code path::

    python tools/model_converters/convert.py mmengine iter_80000.pth weights.safetensors
"""
from typing import Any, Mapping

from .registry import Converted, ConversionError, register_source, unwrap_state_dict

SOURCE = 'mmengine'


@register_source(SOURCE, 'an mmengine checkpoint (ours, mmseg or mmdet): weights kept as they '
                         'are, training state left out')
def convert_mmengine_checkpoint(checkpoint: Mapping[str, Any]) -> Converted:
    state = unwrap_state_dict(checkpoint, wrappers=('state_dict',), prefixes=())
    if not state:
        raise ConversionError('the file holds no weights')
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), Mapping) else {}
    return Converted(state_dict=state, meta=dict(meta))
