"""Train an MMSeg or MMDet config (ours or theirs) on mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                         [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

``--resume`` alone continues from the latest checkpoint in the work dir; ``--resume CKPT``
from that file. Without CUDA, ``--launcher pytorch`` (tools/dist_train.sh) trains on gloo.
"""
import argparse
import logging
import os

from mmengine.config import DictAction
from mmengine.logging import print_log

import mmseg_hrplus  # noqa: F401  (safe checkpoint loading, CPU DDP, our components)
from mmseg_hrplus.engine.runner import build_runner, load_config
from mmseg_hrplus.engine.cpu_ddp import distributed_teardown
from mmseg_hrplus.engine import add_training_hooks


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor or detector')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                             'when no file is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value (e.g. train_cfg.max_iters=10)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg) -> None:
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config', logger='current',
                  level=logging.WARNING)
        return
    if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(f"--amp needs optim_wrapper.type='OptimWrapper', the config has "
                         f'{wrapper.type!r}')
    wrapper.type = 'AmpOptimWrapper'
    wrapper.loss_scale = 'dynamic'


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    add_training_hooks(cfg)  # stop at a NaN loss; per-iteration seeds for exact resume
    if args.amp:
        enable_amp(cfg)
    if args.resume is not None:
        cfg.resume = True
        if args.resume != 'auto':
            cfg.load_from = args.resume
    runner = build_runner(cfg)
    with distributed_teardown():
        runner.train()


if __name__ == '__main__':
    main()
