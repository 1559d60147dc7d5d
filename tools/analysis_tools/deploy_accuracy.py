"""Accuracy and speed of every CPU deployment path of a trained segmentor, in one command.

    python tools/analysis_tools/deploy_accuracy.py CONFIG CHECKPOINT --data DIR
        [--paths pytorch-f32 optimized-f32 ...] [--calib DIR] [--calib-count 16]
        [--shape H W] [--fps-shapes 512x1024 1024x2048] [--repeats 5] [--threads N]
        [--emulate-bf16] [--markdown FILE] [--json FILE] [--work-dir DIR]

The config's test split, pointed at ``--data`` (a Cityscapes-layout folder for Cityscapes
configs, e.g. the synthetic data/demo), goes through every path
(:mod:`mmseg_hrplus.benchmark.deploy_paths`); each is scored with the config's evaluator
against the ground truth and compared with f32 PyTorch (mIoU difference, label agreement,
logits), then timed at ``--shape`` in interleaved rounds against f32 PyTorch (mmseg's eager
model), and at each ``--fps-shapes`` size for frames per second. int8 is calibrated on
``--calib`` images, by default the first ``--calib-count`` training images, never on evaluation
images. Paths this CPU cannot run (bf16 without AVX512_BF16 or AMX) get a row saying why;
``--emulate-bf16`` runs PyTorch's bf16 anyway for its accuracy (its speed is then not
meaningful and marked so).

``--markdown FILE`` writes the tables, with the CPU, the load, the date, the commit and this
command, as the section of FILE keyed by the config (a re-run replaces its own section);
``--json FILE`` writes everything measured.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

#: Load average (1 min) per core above which the timings are said to be taken under load.
LOADED_PER_CORE = 0.5


def hw_shape(text: str) -> Tuple[int, int]:
    """``'512x1024'`` -> ``(512, 1024)`` (argparse type of ``--fps-shapes``)."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not HxW, e.g. 512x1024') from None
    return height, width


def parse_args(argv: Optional[Sequence[str]] = None):
    from mmseg_hrplus.benchmark.deploy_paths import PATH_NAMES
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data', required=True,
                        help="dataset folder the config's test split is read from")
    parser.add_argument('--paths', nargs='+', default=list(PATH_NAMES),
                        help=f'deployment paths, the first {PATH_NAMES[0]} (the reference); '
                             f'default all: {" ".join(PATH_NAMES)}')
    parser.add_argument('--calib', default=None,
                        help='folder of int8 calibration images (default: the first '
                             '--calib-count images of the training split)')
    parser.add_argument('--calib-count', type=int, default=16)
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 1024], metavar=('H', 'W'),
                        help='input size of the timed rounds (batch 1)')
    parser.add_argument('--fps-shapes', type=hw_shape, nargs='*', default=[],
                        help='more sizes to time for frames per second, e.g. 512x1024 '
                             '1024x2048')
    parser.add_argument('--repeats', type=int, default=5, help='interleaved timing rounds')
    parser.add_argument('--threads', type=int, default=None,
                        help='threads of every path (default torch.get_num_threads())')
    parser.add_argument('--emulate-bf16', action='store_true',
                        help='run pytorch-bf16 without native bf16, for accuracy only')
    parser.add_argument('--markdown', help='markdown page to put this run\'s section in')
    parser.add_argument('--json', help='write everything measured here')
    parser.add_argument('--work-dir', help='folder for the exported models (default: a '
                                           'temporary one)')
    return parser, parser.parse_args(argv)


def setup(args):
    """Every check that can fail on the user's input, before any model is built: returns
    ``(cfg, names, calibration image paths, dataloader)``."""
    from mmseg_hrplus.benchmark.deploy_data import (build_test_dataloader, calibration_images,
                                                    dataset_images, point_at_data)
    from mmseg_hrplus.benchmark.deploy_paths import CALIBRATED_PATHS, check_path_names
    from mmseg_hrplus.benchmark.deploy_speed import check_shape
    from mmseg_hrplus.engine.runner import load_config
    from mmseg_hrplus.utils.validation import check_int

    names = check_path_names(args.paths, '--paths')
    check_int('--repeats', args.repeats)
    check_shape(args.shape, '--shape')
    for shape in args.fps_shapes:
        check_shape(shape, '--fps-shapes')
    if args.threads is not None:
        check_int('--threads', args.threads)
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f'CHECKPOINT={args.checkpoint!r} is not a file')
    cfg = point_at_data(load_config(args.config), args.data)
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = build_test_dataloader(cfg)
    calibration: List[str] = []
    if any(name in CALIBRATED_PATHS for name in names):
        calibration = calibration_images(cfg, args.calib, args.calib_count,
                                         dataset_images(loader.dataset))
    return cfg, names, calibration, loader


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser, args = parse_args(argv)
    try:
        cfg, names, calibration, loader = setup(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import init_model

    from mmseg_hrplus.benchmark.deploy_accuracy import evaluate_paths
    from mmseg_hrplus.benchmark.deploy_paths import PathContext, build_paths
    from mmseg_hrplus.benchmark.deploy_report import (report_rows, section_body,
                                                      write_report_section)
    from mmseg_hrplus.benchmark.markdown import git_commit
    from mmseg_hrplus.benchmark.deploy_speed import time_paths
    from mmseg_hrplus.deploy.runtime import check_supported
    from mmseg_hrplus.utils.cpu_info import cpu_info

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_start = os.getloadavg()[0]
    segmentor = revert_sync_batchnorm(init_model(cfg, args.checkpoint, device='cpu')).eval()
    try:
        check_supported(segmentor, 'deploy_accuracy')
    except ValueError as error:
        parser.error(f'CONFIG: {error}')
    evaluator = cfg.test_evaluator
    metric = evaluator[0] if isinstance(evaluator, (list, tuple)) else evaluator
    with tempfile.TemporaryDirectory(prefix='hrplus_deploy_acc_') as tmp:
        work_dir = args.work_dir or tmp
        os.makedirs(work_dir, exist_ok=True)
        ctx = PathContext(segmentor, work_dir, threads, calibration, args.emulate_bf16)
        built, not_run = build_paths(names, ctx)
        for name, reason in not_run.items():
            print(f'{name}: not run: {reason}')
        accuracy = evaluate_paths(segmentor, built, loader, evaluator, loader.dataset.metainfo,
                                  metric.get('ignore_index', 255))
        # an emulated path's speed means nothing (and bf16 emulation is slow): not timed
        timed = {name: path for name, path in built.items() if not path.emulated}
        speed = time_paths(timed, args.shape, args.repeats)
        fps = {f'{h}x{w}': time_paths(timed, (h, w), args.repeats) for h, w in args.fps_shapes}
    rows = report_rows(names, built, not_run, accuracy, speed, fps)
    info = cpu_info()
    load_end = os.getloadavg()[0]
    report = dict(
        config=args.config, checkpoint=args.checkpoint, data=args.data, split='test split',
        images=accuracy[names[0]]['images'],
        calibration=(f'{len(calibration)} images ({args.calib or "training split"})'
                     if calibration else 'nothing (no int8 path)'),
        cpu=info['summary'], cpu_info=info, threads=threads, repeats=args.repeats,
        shape=list(args.shape), fps_shapes=[list(s) for s in args.fps_shapes],
        load_start=load_start, load_end=load_end,
        loaded=max(load_start, load_end) > LOADED_PER_CORE * (os.cpu_count() or 1),
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        commit=git_commit(Path(__file__).resolve().parents[2]),
        command=' '.join(['python', 'tools/analysis_tools/deploy_accuracy.py'] +
                         list(sys.argv[1:] if argv is None else argv)),
        rows=rows)
    body = section_body(report)
    print(body)
    if args.markdown:
        write_report_section(args.markdown, args.config, body)
        print(f'wrote the section of {args.config} in {args.markdown}')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f'wrote {args.json}')
    return report


if __name__ == '__main__':
    main()
