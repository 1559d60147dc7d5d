"""RequireConvertedCheckpointsHook: a declared converted file that a run reads and that is absent
stops the run at before_run, naming the file and its command; anything else passes."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel, BaseModule
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from mmseg_hrplus.engine import MissingConvertedCheckpoint, RequireConvertedCheckpointsHook
from mmseg_hrplus.engine.hooks.converted_checkpoints_hook import checkpoints_read_by

pytestmark = pytest.mark.torch21

COMMAND = 'python tools/model_converters/convert.py hrnet-seg src.pth checkpoints/x.pth'


class Body(BaseModule):
    def __init__(self, checkpoint=None):
        init_cfg = dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None
        super().__init__(init_cfg=init_cfg)
        self.linear = nn.Linear(3, 2)


class Net(BaseModel):
    def __init__(self, checkpoint=None):
        super().__init__()
        self.body = Body(checkpoint)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.body.linear(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def fake_runner(model, load_from=None):
    return SimpleNamespace(model=model, _load_from=load_from)


def test_registered_and_runs_before_everything():
    assert HOOKS.get('RequireConvertedCheckpointsHook') is RequireConvertedCheckpointsHook
    assert RequireConvertedCheckpointsHook.priority == 'VERY_HIGH'


@pytest.mark.parametrize('files', [None, {}, {'a.pth': ''}, {'': 'cmd'}, ['a.pth'],
                                   {'a.pth': 3}])
def test_bad_files_are_refused_at_construction(files):
    with pytest.raises(ValueError, match=r'^RequireConvertedCheckpointsHook: files must be a '
                       r'non-empty dict \{checkpoint path: command that writes it\}'):
        RequireConvertedCheckpointsHook(files=files)


def test_what_a_run_reads():
    model = Net('checkpoints/init.pth')
    assert checkpoints_read_by(fake_runner(model, 'x.pth')) == ['checkpoints/init.pth', 'x.pth']
    assert checkpoints_read_by(fake_runner(Net())) == []


def test_absent_declared_files_are_named_with_their_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hook = RequireConvertedCheckpointsHook(files={
        'checkpoints/x.pth': COMMAND, 'checkpoints/init.pth': 'make-init'})
    with pytest.raises(MissingConvertedCheckpoint) as info:
        hook.before_run(fake_runner(Net('checkpoints/init.pth'), 'checkpoints/x.pth'))
    assert isinstance(info.value, FileNotFoundError)
    assert str(info.value) == (
        '2 converted checkpoint(s) this config starts from are absent (relative paths count '
        f'from {tmp_path}); nothing downloads them: make each with its command, then run again\n'
        '  checkpoints/init.pth: made by\n    make-init\n'
        f'  checkpoints/x.pth: made by\n    {COMMAND}')


def test_present_other_or_undeclared_files_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hook = RequireConvertedCheckpointsHook(files={'checkpoints/x.pth': COMMAND})
    hook.before_run(fake_runner(Net(), 'other.pth'))  # --cfg-options load_from=other.pth
    hook.before_run(fake_runner(Net('undeclared.pth')))  # not this hook's business
    (tmp_path / 'checkpoints').mkdir()
    torch.save(Net().state_dict(), tmp_path / 'checkpoints' / 'x.pth')
    hook.before_run(fake_runner(Net(), 'checkpoints/x.pth'))


def test_a_real_run_stops_before_initialising_then_trains_from_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batch = dict(inputs=torch.ones(2, 3))

    def run(attempt):
        runner = Runner(
            model=Net('checkpoints/init.pth'), work_dir=str(tmp_path / 'work'),
            experiment_name=f'converted_checkpoints_{attempt}',
            train_dataloader=torch.utils.data.DataLoader([batch], batch_size=1,
                                                         collate_fn=lambda items: items[0]),
            train_cfg=dict(by_epoch=False, max_iters=1),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            default_hooks=dict(checkpoint=None, logger=None),
            custom_hooks=[dict(type='RequireConvertedCheckpointsHook',
                               files={'checkpoints/init.pth': COMMAND})],
            log_level='WARNING')
        return runner, runner.train()

    with pytest.raises(MissingConvertedCheckpoint, match=f'checkpoints/init.pth: made by\n    '
                       f'{COMMAND}$'):
        run('absent')
    # the converted file: W = 5, b = -5, so every output is 3 * 5 - 5 = 10 on the ones batch
    weights = {'linear.weight': torch.full((2, 3), 5.0), 'linear.bias': torch.full((2, ), -5.0)}
    (tmp_path / 'checkpoints').mkdir()
    torch.save(weights, tmp_path / 'checkpoints' / 'init.pth')
    runner, model = run('present')
    assert runner.iter == 1
    # loss = mean(out^2) over 2x2 outputs: d/d out = 2 * 10 / 4 = 5, summed over the 2 rows = 10
    # per weight and bias; one SGD step of lr 0.1 from the loaded values: 5 - 1, -5 - 1
    assert torch.equal(model.body.linear.weight.detach(), torch.full((2, 3), 4.0))
    assert torch.equal(model.body.linear.bias.detach(), torch.full((2, ), -6.0))
