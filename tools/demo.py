"""`make demo`: train a small HRNet from scratch, evaluate it, write prediction overlays.

Steps (each through the project's own tools, as a user would run them):

1. generate the synthetic Cityscapes-layout dataset in ``data/demo`` (first use only);
2. ``tools/train.py configs/quickstart/hrnet_w18s_synthetic.py``;
3. ``tools/test.py`` on the last checkpoint with ``--show-dir`` (GT | prediction overlays);
4. print the mIoU, the time taken and where the overlays are.

    python tools/demo.py [--work-dir work_dirs/demo] [--iters 300]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'quickstart' / 'hrnet_w18s_synthetic.py'


def run_tool(args: List[str]) -> None:
    """Run ``tools/<script>`` with this interpreter from the repository root."""
    cmd = [sys.executable] + args
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def latest_test_metrics(work_dir: Path) -> dict:
    """The metrics that ``tools/test.py`` logged last: ``<work_dir>/<stamp>/<stamp>.json``."""
    logs = sorted(glob.glob(str(work_dir / '*' / '*.json')), key=os.path.getmtime)
    for path in reversed(logs):
        lines = Path(path).read_text().strip().splitlines()
        if lines and 'mIoU' in json.loads(lines[-1]):
            return json.loads(lines[-1])
    raise FileNotFoundError(f'no test metrics (mIoU) logged under {work_dir}')


def run_demo(work_dir: Path, iters: Optional[int] = None, data_root: Path = REPO / 'data' / 'demo'
             ) -> dict:
    """Run the three steps; return ``dict(mIoU=..., seconds=..., overlays=[...])``."""
    from mmseg_hrplus.datasets.synthetic_cityscapes import (data_root_options,
                                                            make_synthetic_cityscapes)

    start = time.time()
    counts = make_synthetic_cityscapes(data_root)
    print(f'synthetic dataset in {data_root}: {counts}', flush=True)
    options = [f'{key}={value}' for key, value in data_root_options(data_root).items()]
    if iters is not None:
        options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                    f'default_hooks.checkpoint.interval={iters}',
                    f'param_scheduler.0.end={iters}']
    run_tool(['tools/train.py', str(CONFIG), '--work-dir', str(work_dir),
              '--cfg-options', *options])
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    show_dir = work_dir / 'overlays'
    run_tool(['tools/test.py', str(CONFIG), checkpoint, '--work-dir', str(work_dir),
              '--show-dir', str(show_dir), '--cfg-options', *options])
    metrics = latest_test_metrics(work_dir)
    overlays = sorted(glob.glob(str(show_dir / '**' / '*.png'), recursive=True))
    return dict(mIoU=metrics['mIoU'], aAcc=metrics.get('aAcc'), seconds=time.time() - start,
                overlays=overlays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--iters', type=int, default=None, help='override the 300 iterations')
    args = parser.parse_args()
    result = run_demo(REPO / args.work_dir, args.iters)
    print(f"\ndemo: mIoU {result['mIoU']:.2f} (aAcc {result['aAcc']:.2f}) on the synthetic val "
          f"split, {result['seconds']:.0f} s in all; {len(result['overlays'])} overlays in "
          f"{overlay_folder(result['overlays'], REPO / args.work_dir / 'overlays')}")


def overlay_folder(overlays, fallback) -> str:
    """The folder the overlays are in (mmengine nests them under a run's vis_data/vis_image/)."""
    folders = sorted({os.path.dirname(path) for path in overlays})
    return folders[0] if len(folders) == 1 else str(fallback)


if __name__ == '__main__':
    main()
