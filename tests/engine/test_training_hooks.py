"""mmseg_hrplus/engine: NonFiniteLossHook, IterationSeedHook and the tools/train.py helper."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import HOOKS

from mmseg_hrplus.engine import DEFAULT_TRAINING_HOOKS, add_training_hooks
from mmseg_hrplus.engine.hooks import IterationSeedHook, NonFiniteLossHook
from mmseg_hrplus.engine.hooks.iteration_seed_hook import iteration_seed


def fake_runner(iteration, last_ckpt=None, seed=0):
    hub = MessageHub(f'hooks_test_{iteration}_{last_ckpt}_{seed}')
    if last_ckpt is not None:
        hub.update_info('last_ckpt', last_ckpt)
    return SimpleNamespace(iter=iteration, message_hub=hub, seed=seed)


def test_hooks_are_registered_in_mmengines_root_registry():
    assert HOOKS.get('NonFiniteLossHook') is NonFiniteLossHook
    assert HOOKS.get('IterationSeedHook') is IterationSeedHook
    # before CheckpointHook (VERY_LOW = 90), so a NaN step never gets its checkpoint
    assert NonFiniteLossHook.priority == 'ABOVE_NORMAL'


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_loss_stops_with_iteration_and_last_checkpoint(value):
    runner = fake_runner(6, last_ckpt='work_dirs/x/iter_6.pth')
    outputs = dict(loss=torch.tensor(value), loss_ce=torch.tensor(value),
                   loss_aux=torch.tensor(0.3), acc_seg=torch.tensor(50.0))
    with pytest.raises(FloatingPointError) as info:
        NonFiniteLossHook().after_train_iter(runner, batch_idx=6, outputs=outputs)
    assert str(info.value) == (
        f'loss is {value} at iteration 7 (loss={value}, loss_ce={value} on rank 0): training '
        'stopped before checkpoint 7 was written; last checkpoint: work_dirs/x/iter_6.pth. '
        'Lower the learning rate or check the data and labels of this iteration.')


def test_non_finite_loss_before_any_checkpoint():
    with pytest.raises(FloatingPointError, match='at iteration 1 .*last checkpoint: none saved'):
        NonFiniteLossHook().after_train_iter(fake_runner(0), 0,
                                             outputs=dict(loss=torch.tensor(float('nan'))))


def test_finite_losses_and_non_finite_accuracy_pass():
    # an all-ignored crop gives acc_seg = nan: not a reason to stop
    outputs = dict(loss=torch.tensor(1.5), decode_loss_ce=torch.tensor(1.5),
                   decode_acc_seg=torch.tensor(float('nan')))
    NonFiniteLossHook().after_train_iter(fake_runner(3), 3, outputs=outputs)


def test_iteration_seed_is_a_function_of_seed_and_iteration():
    seeds = {iteration_seed(seed, it) for seed in range(4) for it in range(50)}
    assert len(seeds) == 200  # no two (seed, iteration) pairs share a stream
    assert iteration_seed(3, 17) == iteration_seed(3, 17)
    assert all(0 <= s < 2 ** 63 for s in seeds)


def draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_training_step_draws_depend_only_on_the_iteration():
    hook = IterationSeedHook()
    inside = []
    for outer_seed in (1, 2):  # two different histories of the global generators
        torch.manual_seed(outer_seed)
        np.random.seed(outer_seed)
        random.seed(outer_seed)
        hook.before_train_iter(fake_runner(5), 5)
        inside.append(draws())
        hook.after_train_iter(fake_runner(5), 5)
    assert inside[0] == inside[1]
    hook.before_train_iter(fake_runner(6), 6)
    assert draws() != inside[0]
    hook.after_train_iter(fake_runner(6), 6)


def test_data_side_streams_are_left_as_they_were():
    hook = IterationSeedHook()
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    expected = draws()
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    hook.before_train_iter(fake_runner(2), 2)
    draws()  # dropout etc. of the step
    hook.after_train_iter(fake_runner(2), 2)
    hook.before_val(None)
    torch.randperm(10)  # validation's data loader draws a base seed
    np.random.rand(3)
    hook.after_val(None)
    assert draws() == expected


def test_add_training_hooks_adds_each_once():
    cfg = Config(dict(custom_hooks=[dict(type='mmengine.NonFiniteLossHook', priority='LOW')]))
    assert add_training_hooks(cfg) == ['IterationSeedHook']
    assert [h['type'] for h in cfg.custom_hooks] == ['mmengine.NonFiniteLossHook',
                                                      'IterationSeedHook']
    assert add_training_hooks(cfg) == []
    empty = Config(dict())
    assert add_training_hooks(empty) == list(DEFAULT_TRAINING_HOOKS)
    assert [h['type'] for h in empty.custom_hooks] == list(DEFAULT_TRAINING_HOOKS)
