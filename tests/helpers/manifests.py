"""Checkpoints of other projects' formats, synthesised from key-and-shape manifests
(tests/data/manifests/<name>.json, written once from the original model code)."""
import json
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List

import torch

MANIFESTS = Path(__file__).resolve().parents[1] / 'data' / 'manifests'


def manifest(name: str) -> Dict[str, List[int]]:
    """key -> shape of the manifest ``tests/data/manifests/<name>.json``."""
    return json.loads((MANIFESTS / f'{name}.json').read_text())


def synthesise(shapes, device='cpu', seed=0) -> 'OrderedDict[str, torch.Tensor]':
    """Random tensors of the manifest's shapes (BN variances positive, counters ints)."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(5, device=device)
        elif device == 'meta':
            state[key] = torch.empty(shape, device='meta')
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state
