"""Peak memory of one training step, measured in a process of its own.

The RSS high-water mark is process-wide, so each measurement runs in a fresh process:

    python -m mmseg_hrplus.benchmark.memory CONFIG [--with-cp] [--winograd] \\
        --batch 2 --shape 512 512 [--device cpu] [--threads 2]

prints one JSON line (:func:`memory_probe`'s dict); :func:`run_memory_probe` starts that
process and reads the line. CPU: the peak RSS over the step (``VmHWM`` after resetting it
through ``/proc/self/clear_refs``; ``ru_maxrss`` without ``/proc``) minus the RSS before it;
CUDA: ``torch.cuda.max_memory_allocated`` minus the allocated memory before it.
"""
import argparse
import ctypes
import gc
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from .build import WINOGRAD_CONV_CFG, build_model
from .steps import make_batch, train_step_fn


def peak_rss_mb() -> float:
    """Process-wide peak RSS so far, MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if platform.system() != 'Darwin' else kb / 2**20


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset this process's VmHWM (Linux ``clear_refs`` 5); False when not available."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``), so that the RSS before a
    step is the live memory and the step's high-water mark is not hidden by reused pages."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_probe(config: str, with_cp: bool, batch: int, shape: Sequence[int],
                 device: str = 'cpu', winograd: bool = False) -> dict:
    """Peak memory of one training step (the second: grads and momentum already exist) in
    this process, MiB, for ``config``'s model with ``backbone.with_cp=with_cp`` on a batch
    ``(batch, 3, *shape)``. ``winograd``: built with the backbone's ``conv_cfg`` set to
    WinogradConv2d.

    Returns:
        ``dict(with_cp, before_mb, peak_mb, step_peak_mb=peak_mb - before_mb, method)``.
    """
    torch.manual_seed(0)
    model = build_model(config, device, with_cp=with_cp,
                        conv_cfg=WINOGRAD_CONV_CFG if winograd else None)
    inputs, samples = make_batch(model, (batch, 3, *shape), device)
    step = train_step_fn(model, inputs, samples, set_to_none=False)
    step()
    _release_free_memory()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        method = 'torch.cuda.max_memory_allocated'
    elif _reset_rss_peak() and _proc_status_kb('VmRSS') is not None:
        before = _proc_status_kb('VmRSS') / 1024
        step()
        peak = _proc_status_kb('VmHWM') / 1024
        method = 'VmHWM after clear_refs'
    else:  # no /proc: the process-wide high-water mark (may include model building)
        before = peak_rss_mb()
        step()
        peak = peak_rss_mb()
        method = 'ru_maxrss'
    return dict(with_cp=with_cp, before_mb=before, peak_mb=peak, step_peak_mb=peak - before,
                method=method)


def probe_command(config: str, with_cp: bool, batch: int, shape: Sequence[int],
                  device: str = 'cpu', winograd: bool = False,
                  threads: Optional[int] = None) -> list:
    """The command line of a :func:`memory_probe` in a new Python process."""
    cmd = [sys.executable, '-m', 'mmseg_hrplus.benchmark.memory', config, '--batch',
           str(batch), '--shape', *map(str, shape), '--device', device]
    if with_cp:
        cmd.append('--with-cp')
    if winograd:
        cmd.append('--winograd')
    if threads:
        cmd += ['--threads', str(threads)]
    return cmd


def run_memory_probe(config: str, with_cp: bool, batch: int, shape: Sequence[int],
                     device: str = 'cpu', winograd: bool = False,
                     threads: Optional[int] = None, cwd: Optional[str] = None) -> dict:
    """:func:`memory_probe` in a new process (see the module notes); returns its dict.

    Raises:
        subprocess.CalledProcessError: the probe failed (its stderr is attached).
    """
    out = subprocess.run(probe_command(config, with_cp, batch, shape, device, winograd,
                                       threads),
                         check=True, capture_output=True, text=True, cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(
        prog='python -m mmseg_hrplus.benchmark.memory',
        description='Peak memory of one training step of a config\'s model (one JSON line).')
    parser.add_argument('config', help='a config path, or mmseg::/mmdet::<path>')
    parser.add_argument('--with-cp', action='store_true', help='backbone.with_cp=True')
    parser.add_argument('--winograd', action='store_true',
                        help='the backbone\'s conv_cfg set to mmseg_hrplus.WinogradConv2d')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmseg_hrplus.models  # noqa: F401  (registers our models)
    result = memory_probe(args.config, args.with_cp, args.batch, args.shape, args.device,
                          args.winograd)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
