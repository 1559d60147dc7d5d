"""Check the built model's heads against its backbone before a run, under any tool."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmseg_hrplus.models.utils.contract import check_model_contract


@HOOKS.register_module()
class ModelContractHook(Hook):
    """Run :func:`~mmseg_hrplus.models.utils.contract.check_model_contract` at ``before_run``.

    Our ``tools/train.py`` and ``tools/test.py`` check the model as soon as the Runner has built
    it. mmseg's and mmdet's own tools build it inside ``Runner.__init__`` with no such step;
    listing this hook in a config gives them the same check before the first iteration::

        custom_hooks = [dict(type='ModelContractHook')]

    A head or neck whose ``in_channels``/``in_index`` do not fit the backbone's ``out_specs``
    then raises ``ValueError`` naming both, instead of a shape error inside ``forward``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_model_contract(runner.model)
