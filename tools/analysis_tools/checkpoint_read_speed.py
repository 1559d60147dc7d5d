"""How fast the safe reader reads a W48 checkpoint, against ``torch.load(weights_only=True)``.

Saves the state dict of HRNetV2-W48 + FCN (configs/hrnet_w48_cityscapes.py, about 260 MB of
float32) as an mmengine checkpoint, then reads it in interleaved rounds, the same run, with
both readers, and reports min and median seconds and the ratio (ours / torch: below 1.5 is the
bar). Each reader's peak memory is measured in a fresh process: a reader that copied every
storage twice would need about twice the file's size.

    python tools/analysis_tools/checkpoint_read_speed.py [--rounds 7] [--markdown FILE]

``--markdown`` writes the result (with the CPU, the commit and this command) to FILE.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'hrnet_w48_cityscapes.py'
READERS = {
    'torch.load(weights_only=True)':
        lambda path: torch.load(path, map_location='cpu', weights_only=True),
    'mmseg_hrplus read_checkpoint':
        lambda path: __import__('mmseg_hrplus.checkpoint', fromlist=['read_checkpoint'])
        .read_checkpoint(path, map_location='cpu'),
}


def w48_checkpoint(path: str) -> int:
    """Write the W48 model's weights as an mmengine checkpoint; return the file's size."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg_hrplus  # noqa: F401  (registers the components)
    cfg = Config.fromfile(str(CONFIG))
    init_default_scope('mmseg')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 80000}}, path)
    return os.path.getsize(path)


def peak_memory_mb(path: str, reader: str) -> float:
    """The rise of peak resident memory when ``reader`` reads ``path`` in a new process (this
    script again, with ``--measure-memory``)."""
    run = subprocess.run([sys.executable, __file__, '--measure-memory', reader, path],
                         capture_output=True, text=True, check=True)
    return float(run.stdout.strip().splitlines()[-1])


def _status_mb(field: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure_memory(reader: str, path: str) -> None:
    """Print how far the resident memory peaks above where it was before the read (Linux: the
    peak is reset through /proc/self/clear_refs first, so imports do not hide it)."""
    import mmseg_hrplus.checkpoint  # noqa: F401  (imported before the baseline, as torch is)
    Path('/proc/self/clear_refs').write_text('5')
    before = _status_mb('VmRSS')
    loaded = READERS[reader](path)
    print(_status_mb('VmHWM') - before)
    del loaded


def commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                              text=True, cwd=CONFIG.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--markdown', type=Path, default=None)
    parser.add_argument('--measure-memory', nargs=2, metavar=('READER', 'PATH'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        return measure_memory(*args.measure_memory)
    from mmseg_hrplus.utils.cpu_info import cpu_info
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'w48.pth')
        size = w48_checkpoint(path)
        times = {name: [] for name in READERS}
        for name, read in READERS.items():  # warm the page cache and the imports
            read(path)
        for _ in range(args.rounds):
            for name, read in READERS.items():
                start = time.perf_counter()
                loaded = read(path)
                times[name].append(time.perf_counter() - start)
                del loaded
        memory = {name: peak_memory_mb(path, name) for name in READERS}
    torch_name, ours_name = list(READERS)
    lines = [
        f'W48 checkpoint ({size / 2 ** 20:.0f} MiB), {args.rounds} interleaved rounds, '
        f'torch {torch.__version__}, Python {platform.python_version()}',
        f'CPU: {cpu_info()["summary"]}; load average {os.getloadavg()[0]:.1f} at the end; '
        f'commit {commit()}',
        f'command: python tools/analysis_tools/checkpoint_read_speed.py --rounds {args.rounds}',
        '',
        '| reader | min s | median s | peak memory rise MiB |',
        '|---|---|---|---|',
    ]
    for name in READERS:
        lines.append(f'| {name} | {min(times[name]):.3f} | {statistics.median(times[name]):.3f}'
                     f' | {memory[name]:.0f} |')
    ratio_min = min(times[ours_name]) / min(times[torch_name])
    ratio_median = statistics.median(times[ours_name]) / statistics.median(times[torch_name])
    memory_ratio = memory[ours_name] / memory[torch_name]
    lines += ['', f'ours / torch.load: {ratio_min:.2f}x at the minimum, {ratio_median:.2f}x at '
              f'the median (bar: below 1.5x); peak memory {memory_ratio:.2f}x']
    text = '\n'.join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + '\n')


if __name__ == '__main__':
    main()
