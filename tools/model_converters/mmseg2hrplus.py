"""Convert an mmseg BiSeNetV2 checkpoint for mmseg_hrplus's BiSeNetV2 + BGAHead + BoosterHead.

Usage::

    python tools/model_converters/mmseg2hrplus.py SRC DST

SRC is an mmseg 1.x (or 0.x) checkpoint of a ``bisenetv2_fcn_*`` model, e.g. mmseg's
``bisenetv2_fcn_4x4_1024x1024_160k_cityscapes_20210902_015551-bcf10f09.pth``; DST is written
with the renamed ``state_dict`` and SRC's ``meta`` (class names, palette) and loads with
``load_from=DST`` in ``configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py``.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmengine.runner import CheckpointLoader  # noqa: E402

import mmseg_hrplus  # noqa: E402,F401  (safe globals for mmengine checkpoints on torch>=2.6)
from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmseg BiSeNetV2 segmentor checkpoint (path or URL)')
    parser.add_argument('dst', help='output checkpoint path')
    args = parser.parse_args(argv)

    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    state_dict = convert_mmseg_bisenetv2(checkpoint)
    meta = dict(checkpoint.get('meta', {}) or {})
    meta['converted_from'] = f'mmseg BiSeNetV2: {args.src}'
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': state_dict, 'meta': meta}, args.dst)
    print(f'{len(state_dict)} tensors written to {args.dst}')


if __name__ == '__main__':
    main()
