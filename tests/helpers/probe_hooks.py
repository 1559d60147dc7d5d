"""Test-only hooks, imported by the tiny training configs of tests/helpers/tiny_run.py
(``custom_imports``, as ``tests.helpers.probe_hooks``).

Each does nothing unless its environment variable is set, so the runs being compared use the
very same config: HRPLUS_TEST_KILL_AFTER=k SIGKILLs the process right after iteration k (after
CheckpointHook ran), HRPLUS_TEST_NAN_AT=k poisons the weights before iteration k so that its
loss is NaN, HRPLUS_TEST_RECORD=1 writes each rank's samples, initial and final parameters to the
work dir.
"""
import json
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class HrplusTestKillHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW): the checkpoint of k is on disk

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if str(runner.iter + 1) == os.environ.get('HRPLUS_TEST_KILL_AFTER'):
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class HrplusTestNaNHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if str(runner.iter + 1) == os.environ.get('HRPLUS_TEST_NAN_AT'):
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            with torch.no_grad():
                model.decode_head.conv_seg.weight.fill_(float('nan'))


@HOOKS.register_module()
class HrplusTestRecordHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if os.environ.get('HRPLUS_TEST_RECORD') != '1':
            return
        paths = [osp.basename(s.metainfo['img_path']) for s in data_batch['data_samples']]
        with open(osp.join(runner.work_dir, f'samples_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, samples=paths)) + '\n')

    def before_train(self, runner):
        self._save_params(runner, 'params_init')

    def after_train(self, runner):
        self._save_params(runner, 'params')

    @staticmethod
    def _save_params(runner, name):
        if os.environ.get('HRPLUS_TEST_RECORD') != '1':
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(params, osp.join(runner.work_dir, f'{name}_rank{get_rank()}.pth'))
