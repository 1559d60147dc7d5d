"""Per-iteration random streams, so that a resumed run repeats the uninterrupted one exactly."""
import random
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def iteration_seed(seed: int, iteration: int) -> int:
    """A 63-bit seed for ``iteration`` (0-based) of a run seeded with ``seed``.

    ``SeedSequence`` mixes the pair so that neighbouring iterations and neighbouring base
    seeds (``diff_rank_seed`` adds the rank) get unrelated streams.
    """
    words = np.random.SeedSequence([seed % 2**63, iteration]).generate_state(2, np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def get_rng_states() -> Dict[str, object]:
    """Python, numpy, torch CPU and current-CUDA-device generator states."""
    states = dict(python=random.getstate(), numpy=np.random.get_state(),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: Dict[str, object]) -> None:
    """Inverse of :func:`get_rng_states`."""
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if 'cuda' in states:
        torch.cuda.set_rng_state(states['cuda'])


def seed_all(seed: int) -> None:
    """Seed python, numpy (32 bits of ``seed``), torch CPU and the current CUDA device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed(seed)


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Make the randomness of training iteration ``i`` a function of (seed, i) only.

    Why: mmengine resumes an iteration-based run by replaying the data loader up to the
    checkpoint's iteration, which reproduces the data side (sampler order, augmentation drawn
    from numpy/python RNGs in the loader), but the model side (dropout, random batch
    augmentation in the data preprocessor, stochastic layers) draws from the global generators,
    whose state after k iterations is not in the checkpoint. Without this hook a resumed run
    with dropout diverges from the uninterrupted one at its first iteration.

    What it does:

    * ``before_train_iter``: keeps the global generator states (the data side's streams) and
      seeds python, numpy, torch and the current CUDA device with
      :func:`iteration_seed` (``runner.seed``, iteration); ``after_train_iter`` puts the kept
      states back. Everything inside the step (data preprocessor, forward, backward, optimizer,
      the hooks in between) therefore draws from a stream that depends only on the iteration,
      and the data loader's streams are only advanced by data loading, which the resume replay
      repeats exactly.
    * ``before_val``/``after_val``: validation during training (its data loader draws a base
      seed from torch's generator) leaves the training streams as they were, so neither a
      resume nor a change of ``val_interval`` changes training.

    Ranks share ``runner.seed`` unless ``randomness.diff_rank_seed=True`` (mmengine adds the
    rank then), exactly as without this hook. ``tools/train.py`` adds it to ``custom_hooks``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._outer: Optional[Dict[str, object]] = None
        self._before_val: Optional[Dict[str, object]] = None

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[Sequence] = None) -> None:
        self._outer = get_rng_states()
        seed_all(iteration_seed(runner.seed, runner.iter))

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[Sequence] = None,
                         outputs: Optional[Dict] = None) -> None:
        if self._outer is not None:
            set_rng_states(self._outer)
            self._outer = None

    def before_val(self, runner) -> None:
        self._before_val = get_rng_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_states(self._before_val)
            self._before_val = None
