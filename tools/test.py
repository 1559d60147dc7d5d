"""Evaluate a checkpoint with an MMSeg or MMDet config on mmengine's Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out PATH] [--show-dir DIR]
                        [--tta] [--crf] [--cfg-options k=v ...] [--launcher ...]

``--out``: for MMSeg configs a directory that receives the predicted label maps; for MMDet
configs a ``.pkl`` file of the raw detections. ``--show-dir`` writes drawn predictions.
"""
import argparse
import os

from mmengine.config import ConfigDict, DictAction

import mmseg_hrplus  # noqa: F401  (safe checkpoint loading, CPU DDP, our components)
from mmseg_hrplus.engine.runner import build_runner, config_scope, load_config
from mmseg_hrplus.engine.cpu_ddp import distributed_teardown


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the evaluation logs')
    parser.add_argument('--out', help='mmseg: directory for predicted label maps; '
                                      'mmdet: .pkl file for raw detections')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='directory for drawn predictions')
    parser.add_argument('--show-interval', type=int, default=1,
                        help='draw every N-th test batch (mmseg draws every 50th by default; '
                             'here every batch, so --show-dir holds one image per input)')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--crf', action='store_true',
                        help='mmseg: refine predictions with the dense CRF (DeepLabv2), with the '
                             "config's model.crf values or the defaults; needs "
                             'pip install -e .[crf]')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg, args, scope: str) -> None:
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError("--show/--show-dir need default_hooks.visualization="
                         "dict(type='SegVisualizationHook' or 'DetVisualizationHook')")
    hook['draw'] = True
    if scope == 'mmseg':
        hook['interval'] = args.show_interval
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if scope == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def enable_tta(cfg) -> None:
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise ValueError(f'--tta needs {missing} in the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    scope = config_scope(cfg)
    cfg.load_from = args.checkpoint
    if args.crf:
        if scope != 'mmseg':
            raise ValueError('--crf refines semantic segmentation; this is an MMDet config')
        from mmseg_hrplus.models.segmentors import enable_dense_crf
        cfg.model = enable_dense_crf(cfg.model)
    if args.show or args.show_dir:
        enable_visualization(cfg, args, scope)
    if args.tta:
        enable_tta(cfg)
    if args.out is not None and scope == 'mmseg':
        evaluators = cfg.test_evaluator
        for metric in evaluators if isinstance(evaluators, list) else [evaluators]:
            metric['output_dir'] = args.out
    runner = build_runner(cfg)
    if args.out is not None and scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file for MMDet configs, got {args.out}')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    with distributed_teardown():
        runner.test()


if __name__ == '__main__':
    main()
