"""Parameters and FLOPs of a config's inference graph, counted with mmengine (what is counted
and how: :mod:`mmseg_hrplus.benchmark.flops`).

    python tools/analysis_tools/get_flops.py configs/hrnet_w48_cityscapes.py --shape 1024 2048
    python tools/analysis_tools/get_flops.py --table     # our main configs next to the papers

The papers' figures in :data:`REFERENCE_FIGURES` are quoted from the sources named there (also
some collected in docs/STACK.md); they are not measured here.
"""
import argparse
import glob
import os.path as osp
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmengine.config import DictAction

import mmseg_hrplus  # noqa: F401  (registers our models)
from mmseg_hrplus.benchmark.flops import count

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Reference(NamedTuple):
    """Published figures for one of our configs, and where they come from."""

    shape: Tuple[int, int]  # (H, W) the figures refer to; our count uses the same size
    params_m: Optional[float]
    gflops: Optional[str]
    source: str


#: config (relative to the repository) -> published figures. Sources: the HRNet paper (Wang et
#: al., TPAMI 2020, Table 4: 747.3 GFLOPs) and the official HRNet-Semantic-Segmentation README
#: (65.9M, 696.2 GFLOPs); the BiSeNetV2 paper (Yu et al., IJCV 2021: 21.15 GFLOPs at 512x1024);
#: mmseg 1.2.2's models counted with mmengine on this project's stack (STACK.md). The DeepLabv2
#: paper gives no parameter or FLOP count.
REFERENCE_FIGURES: Dict[str, Reference] = {
    'configs/hrnet_w48_cityscapes.py': Reference(
        (1024, 2048), 65.9, '696.2 / 747.3',
        'HRNet official README / HRNet paper Table 4; mmseg fcn_hr48: 65.8587M, 751 G'),
    'configs/hrnet/hrnet_w48_paper_cityscapes.py': Reference(
        (1024, 2048), 65.9, '696.2 / 747.3',
        'same network as W48 in the HRNet paper (its fusion order, see the config)'),
    'configs/hrnet/hrnet_w48_fast_cityscapes.py': Reference(
        (1024, 2048), 65.9, '696.2 / 747.3',
        'same network as hrnet_w48_cityscapes; the count is the arithmetic actually done '
        '(Winograd products and transforms, per-stream head conv)'),
    'configs/hrnet/hrnet_w48_cityscapes_official-weights.py': Reference(
        (1024, 2048), 65.9, '696.2 / 747.3',
        'same network as hrnet_w48_cityscapes (one resize per fusion path, as the official '
        'code)'),
    'configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py': Reference(
        (1024, 2048), None, None, 'no count in our reference notes'),
    'configs/hrnet/hrnet_w18_small_v2_cityscapes_official-weights.py': Reference(
        (1024, 2048), 3.9393, '78',
        'same network as hrnet_w18_small_cityscapes: mmseg fcn_hr18s counted with mmengine'),
    'configs/hrnet/hrnet_w32_cityscapes.py': Reference(
        (1024, 2048), None, None, 'no published figure'),
    'configs/hrnet/hrnet_w18_cityscapes.py': Reference(
        (1024, 2048), 9.6408, '149', 'mmseg fcn_hr18 counted with mmengine (STACK.md)'),
    'configs/hrnet/hrnet_w18_small_cityscapes.py': Reference(
        (1024, 2048), 3.9393, '78', 'mmseg fcn_hr18s counted with mmengine (STACK.md)'),
    'configs/hrnet/ocrnet_hr48_cityscapes.py': Reference(
        (1024, 2048), 70.3714, '1302.8',
        'mmseg ocrnet_hr48 (same layers and keys) counted with mmengine on this stack'),
    'configs/hrnet/ocrnet_hr48_paper_cityscapes.py': Reference(
        (1024, 2048), None, None,
        'no published count (ocrnet_hr48 with the paper fusion: its extra new-stream rows)'),
    'configs/hrnet/ocrnet_hr18_cityscapes.py': Reference(
        (1024, 2048), 12.08, '428.5',
        'mmseg ocrnet_hr18 (same layers and keys) counted with mmengine on this stack'),
    'configs/hrnet/ocrnet_hr18_paper_cityscapes.py': Reference(
        (1024, 2048), None, None,
        'no published count (ocrnet_hr18 with the paper fusion: its extra new-stream rows)'),
    'configs/hrnet/ocrnet_hr18s_cityscapes.py': Reference(
        (1024, 2048), 6.3785, '357.3',
        'mmseg ocrnet_hr18s (same layers and keys) counted with mmengine on this stack'),
    'configs/deeplabv2/deeplabv2_r101-d8_cityscapes-512x1024.py': Reference(
        (1024, 2048), None, None, 'DeepLabv2 paper gives no count'),
    'configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py': Reference(
        (512, 1024), 3.3589, '21.15',
        'BiSeNetV2 paper (GFLOPs); params: mmseg bisenetv2 without aux (mmengine: 24.7 G)'),
    'configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py': Reference(
        (512, 1024), None, None,
        'CoinCheung/BiSeNet publishes no count (BiSeNetV2 without the BGA pointwise biases)'),
    'configs/bisenetv2/bisenetv2-large_cityscapes-1024x1024.py': Reference(
        (512, 1024), None, None, 'no count in our reference notes'),
}


def table_configs() -> List[str]:
    """The configs of ``--table``: the headline config, then hrnet, deeplabv2 (Cityscapes) and
    bisenetv2, in file-name order (relative paths)."""
    patterns = ['configs/hrnet/*.py', 'configs/deeplabv2/*cityscapes*.py',
                'configs/bisenetv2/*.py']
    found = ['configs/hrnet_w48_cityscapes.py']
    for pattern in patterns:
        found += sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, pattern)))
    return found


def format_table(rows: Sequence[Tuple[str, Tuple[int, int], Dict[str, float], Reference]]
                 ) -> str:
    """Markdown table: config, input, our params/GFLOPs, the reference ones and their source."""
    lines = ['| config | input (HxW) | params (M) | GFLOPs | reference params (M) | '
             'reference GFLOPs | source of the reference figures |',
             '|---|---|---|---|---|---|---|']
    for config, shape, counts, ref in rows:
        ref_params = '-' if ref.params_m is None else f'{ref.params_m:g}'
        lines.append(f'| {config} | {shape[0]}x{shape[1]} | {counts["params"] / 1e6:.4f} | '
                     f'{counts["flops"] / 1e9:.1f} | {ref_params} | {ref.gflops or "-"} | '
                     f'{ref.source} |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='config file (not with --table)')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (one value: square); default 1024 2048, or with '
                             '--table the size of the published figures')
    parser.add_argument('--table', action='store_true',
                        help='print a markdown table of the main configs next to the papers')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    shape = None if args.shape is None else tuple(args.shape * (3 - len(args.shape)))[:2]

    if args.table:
        if args.config:
            parser.error('give either a config or --table')
        rows = []
        for config in table_configs():
            ref = REFERENCE_FIGURES.get(config, Reference((1024, 2048), None, None, '-'))
            size = shape or ref.shape
            rows.append((config, size, count(osp.join(REPO, config), size, args.cfg_options),
                         ref))
            print(f'counted {config}', file=sys.stderr, flush=True)
        text = format_table(rows)
    else:
        if not args.config:
            parser.error('a config is needed (or --table)')
        size = shape or (1024, 2048)
        counts = count(args.config, size, args.cfg_options)
        text = (f'config: {args.config}\ninput: 1x3x{size[0]}x{size[1]}\n'
                f'params: {counts["params"] / 1e6:.4f} M ({int(counts["params"])})\n'
                f'FLOPs: {counts["flops"] / 1e9:.2f} G (mmengine, multiply-adds, auxiliary '
                f'heads excluded)')
    print(text)
    return text


if __name__ == '__main__':
    main()
