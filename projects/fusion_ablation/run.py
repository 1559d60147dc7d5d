"""Train one config per seed and per HRNet fusion variant; tabulate and plot mIoU and loss.

    python -m projects.fusion_ablation.run CONFIG --seeds N --work-dir DIR
        [--modes official paper conv_first/from_all ...] [--all-combinations]
        [--make-synthetic-data ROOT [--synthetic-size H W]] [--threads T] [--nproc P]
        [--launch subprocess|in-process] [--flops-shape H W] [--complexity-only]
        [--report-only]
        [--cfg-options k=v ...]

``--modes`` takes the named modes 'official' (= conv_first/from_lowest) and 'paper' (=
upsample_first/from_all) and the four 'fuse_order/new_branch' combinations; ``--all-combinations``
adds every combination. Run it from the repository root (the project is the package
``projects.fusion_ablation``; the library is the installed ``mmseg_hrplus``). Each run is
``tools/train.py`` in its own child process, work dir ``DIR/<fuse_order>-<new_branch>/seed<k>``; the
final validation mIoU and the loss curve are read from its json scalars log and saved in
``result.json`` there. A rerun trains only the runs without ``result.json`` (an interrupted run
restarts from scratch). Then ``DIR/fusion_ablation.md`` (per-variant mean ± std mIoU, n, params and
GFLOPs of that variant's model at ``--flops-shape``, default the config's crop size; paired per-seed
differences to official) and ``DIR/fusion_ablation.png`` (loss curves, mIoU per seed) are written.
``--report-only`` writes the report from the runs finished so far (n per row) and trains
nothing. ``--complexity-only`` counts params/FLOPs per variant and writes
``DIR/fusion_complexity.md`` without training (e.g. W48 at 512x1024).

Seeds: run ``k`` uses ``randomness.seed=k``, ``randomness.deterministic=True`` and train sampler
seed ``k``, so every variant of seed ``k`` sees the same images in the same order with the same
augmentations (tools/train.py's per-iteration seeds). On CPU, a run is bitwise reproducible on
the same machine, torch build and thread count with ``num_workers=0`` (the quickstart config);
different CPUs (AVX2 vs AVX-512 kernels), torch versions or thread counts change float summation
order and hence the numbers in the last digits and, through training, the final mIoU by a little.
GPU runs are not bitwise reproducible in general (cuDNN algorithm choice, atomics), even with
``deterministic=True`` for the ops that lack a deterministic kernel.

What projects/fusion_ablation/README.md reports (W18-small from scratch, the quickstart recipe of
300 iterations, on the synthetic scenes drawn at 64x128 instead of the demo's 128x256 so that 6-12
runs fit on a crowded 2-core CPU; one torch thread per run)::

    python -m projects.fusion_ablation.run configs/quickstart/hrnet_w18s_synthetic.py \
        --seeds 3 --modes official paper --all-combinations \
        --make-synthetic-data work_dirs/fusion_ablation/data_64x128 --synthetic-size 64 128 \
        --threads 1 --launch in-process --work-dir work_dirs/fusion_ablation \
        --cfg-options default_hooks.logger.interval=10

At the demo's own size drop ``--synthetic-size 64 128`` (and use ``--make-synthetic-data
data/demo``): about 200 s per run on 2 free cores.

Cityscapes on a GPU cluster: W48 (configs/hrnet_w48_cityscapes.py, mmseg's fcn_hr48 80k recipe,
2 images per GPU on 4 GPUs), 3 seeds x the two named modes, each run on 4 GPUs through torchrun
(as tools/dist_train.sh), runs one after another; ``--no-deterministic`` because CUDA has no
deterministic bilinear-upsampling backward (the seeds and the data order stay fixed)::

    srun --nodes=1 --gres=gpu:4 --cpus-per-task=16 \
        python -m projects.fusion_ablation.run configs/hrnet_w48_cityscapes.py \
        --seeds 3 --modes official paper --nproc 4 --no-deterministic \
        --flops-shape 1024 2048 --work-dir work_dirs/fusion_ablation_w48_cityscapes

Add ``--all-combinations`` for the mixed variants (12 runs). The config initialises the backbone
from ImageNet weights trained with the official fusion; in paper mode the from_all fusion rows
start from the default init instead (see configs/hrnet/hrnet_w48_paper_cityscapes.py), which
favours official. For a comparison without that bias add
``--cfg-options model.backbone.init_cfg=None`` (from scratch, longer schedule needed).
"""
import argparse
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config, DictAction

from mmseg_hrplus.benchmark.flops import count
from mmseg_hrplus.utils.cpu_info import cpu_info
from projects.fusion_ablation import ablation as fa

REPO = Path(__file__).resolve().parents[2]

TRAIN_SCRIPT = REPO / 'tools' / 'train.py'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config (its backbone must be mmseg_hrplus.HRNet)')
    parser.add_argument('--seeds', type=int, required=True,
                        help='seeds 0..N-1 per variant (at least 2)')
    parser.add_argument('--modes', nargs='+', default=None, metavar='MODE',
                        help=f'fusion variants; allowed: {", ".join(fa.ALLOWED_MODES)}')
    parser.add_argument('--all-combinations', action='store_true',
                        help='every fuse_order x new_branch combination')
    parser.add_argument('--work-dir', required=True, help='root of the runs and the report')
    parser.add_argument('--make-synthetic-data', metavar='ROOT', default=None,
                        help="generate the package's synthetic Cityscapes-layout data in ROOT "
                             '(as make demo does) and point the config at it')
    parser.add_argument('--synthetic-size', type=int, nargs=2, default=(128, 256),
                        metavar=('H', 'W'), help='image size of --make-synthetic-data '
                        '(default 128 256, the demo\'s)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads of every run (OMP_NUM_THREADS); on a '
                             'crowded CPU 1 avoids threads waiting for each other')
    parser.add_argument('--nproc', type=int, default=1,
                        help='processes (GPUs) per run, launched with torchrun')
    parser.add_argument('--launch', choices=['subprocess', 'in-process'], default='subprocess',
                        help='each run in a child tools/train.py (default) or on a fresh Runner '
                             'in this process (small runs; not with --nproc > 1)')
    parser.add_argument('--flops-shape', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='input size of the params/FLOPs count (default: the crop size)')
    parser.add_argument('--complexity-only', action='store_true',
                        help='count params/FLOPs per variant, write fusion_complexity.md, '
                             'no training')
    parser.add_argument('--no-deterministic', action='store_true',
                        help='leave torch deterministic algorithms off (needed on CUDA: '
                             'bilinear upsampling has no deterministic backward)')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: write the report from the runs finished so far')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides for every run, key=value')
    args = parser.parse_args(argv)
    try:
        args.variants = fa.parse_modes(args.modes, args.all_combinations)
        if not args.complexity_only:
            fa.check_seeds(args.seeds)
        if args.nproc < 1:
            raise ValueError(f'--nproc {args.nproc}: needs at least 1 process per run')
        if args.threads is not None and args.threads < 1:
            raise ValueError(f'--threads {args.threads}: needs at least 1 thread')
        if args.nproc > 1 and args.launch == 'in-process':
            raise ValueError(f'--nproc {args.nproc} needs --launch subprocess (torchrun)')
    except ValueError as err:
        parser.error(str(err))
    if not Path(args.config).is_file():
        parser.error(f'config file not found: {args.config}')
    return args


def data_options(root: str, size: Sequence[int] = (128, 256)) -> Dict[str, object]:
    """Generate the synthetic dataset (``size`` = H, W) in ``root``; the overrides that make a
    config read it (and, for a size other than the demo's, crop and pad to it)."""
    from mmseg_hrplus.datasets.synthetic_cityscapes import (data_root_options,
                                                            make_synthetic_cityscapes)

    make_synthetic_cityscapes(root, size=tuple(size))
    extra = {} if tuple(size) == (128, 256) else {
        'model.data_preprocessor.size': tuple(size)}
    return {**extra, **data_root_options(root)}


def default_shape(config: str, cfg_options: dict) -> tuple:
    """The config's crop size (``model.data_preprocessor.size``, else ``crop_size``)."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('crop_size')
    if size is None:
        raise ValueError(f'{config} has no crop size: pass --flops-shape H W')
    return tuple(size)


def complexity(config: str, variants: Sequence[fa.Variant], shape: tuple,
               cfg_options: dict, cache: Optional[Path] = None) -> Dict[str, dict]:
    """combo -> ``dict(params, flops, shape)`` of the config's inference model
    (:func:`mmseg_hrplus.benchmark.flops.count`).

    ``cache``: a json file of earlier counts (keyed by config, variant, shape and overrides),
    read and extended, so a rerun of the tool does not count again.
    """
    saved = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    out = {}
    for variant in variants:
        options = {**cfg_options, **variant.cfg_options()}
        key = json.dumps([str(config), list(shape), sorted(map(str, options.items()))])
        if key not in saved:
            saved[key] = dict(count(config, shape, options), shape=list(shape))
        out[variant.combo] = saved[key]
    if cache is not None:
        cache.write_text(json.dumps(saved, indent=1))
    return out


def complexity_markdown(config: str, costs: Dict[str, dict]) -> str:
    """Params and GFLOPs per variant, with the difference to official."""
    ref = costs.get(fa.Variant(*fa.REFERENCE_VARIANT).combo)
    lines = [f'Params and FLOPs of {config} per fusion variant (mmengine counter, '
             'multiply-adds, inference graph):', '',
             '| fusion | input | params (M) | GFLOPs | vs official: params | vs official: '
             'GFLOPs |', '|---|---|---|---|---|---|']
    for combo, cost in costs.items():
        d_params = d_flops = '-'
        if ref is not None:
            d_params = f'{(cost["params"] - ref["params"]) / 1e6:+.4f} M'
            d_flops = (f'{(cost["flops"] - ref["flops"]) / 1e9:+.3f} G '
                       f'({100 * (cost["flops"] / ref["flops"] - 1):+.1f}%)')
        lines.append(f'| {fa.Variant(*combo.split("/")).label} | {cost["shape"][0]}x'
                     f'{cost["shape"][1]} | {cost["params"] / 1e6:.4f} | '
                     f'{cost["flops"] / 1e9:.3f} | {d_params} | {d_flops} |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    root = Path(args.work_dir)
    root.mkdir(parents=True, exist_ok=True)
    options = dict(args.cfg_options)
    if args.make_synthetic_data:
        options = {**data_options(args.make_synthetic_data, args.synthetic_size), **options}
    if args.threads is not None:
        import torch
        os.environ['OMP_NUM_THREADS'] = str(args.threads)  # child processes
        torch.set_num_threads(args.threads)  # in-process runs
    shape = tuple(args.flops_shape) if args.flops_shape else default_shape(args.config, options)
    costs = complexity(args.config, args.variants, shape, options, root / 'complexity.json')
    if args.complexity_only:
        text = complexity_markdown(args.config, costs)
        (root / 'fusion_complexity.md').write_text(text)
        print(text)
        return dict(complexity=costs)

    runs = fa.plan_runs(root, args.variants, range(args.seeds), not args.no_deterministic)
    if args.report_only:
        train = None
    elif args.launch == 'in-process':
        train = fa.runner_trainer(args.config, options)
    else:
        train = fa.subprocess_trainer(args.config, TRAIN_SCRIPT, options, args.nproc)
    results = fa.run_matrix(runs, train)
    if not results:
        raise SystemExit(f'no finished run under {root}: nothing to report')
    summary = fa.summarise(results)
    seconds = [r['train_seconds'] for r in results]
    notes: List[str] = [
        f'Config `{args.config}`, seeds 0..{args.seeds - 1} per variant (finished runs: n '
        'per row), '
        f'{args.nproc} process(es) per run; overrides: '
        f'`{" ".join(f"{k}={v}" for k, v in options.items()) or "none"}`. mIoU (%) of the '
        f'final validation step (iteration {results[0]["val_step"]}); params and GFLOPs '
        '(mmengine counter, multiply-adds) of that variant\'s inference model.',
        f'Machine: {cpu_info()["summary"]}; {sum(seconds) / len(seconds):.0f} s per run on '
        'average (training and validation).']
    text = fa.format_markdown(summary, costs, notes=notes) + '\n' + \
        complexity_markdown(args.config, costs)
    (root / 'fusion_ablation.md').write_text(text)
    (root / 'fusion_ablation.json').write_text(json.dumps(
        dict(summary=summary, complexity=costs, results=results), indent=1))
    fa.plot_ablation(results, root / 'fusion_ablation.png',
                     title=f'{Path(args.config).stem}: HRNet fusion variants, '
                           f'{args.seeds} seeds')
    print(text)
    return dict(summary=summary, complexity=costs, results=results)


if __name__ == '__main__':
    main()
