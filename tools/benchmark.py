"""Time our segmentor against its mmseg reference with the same weights, in one process.

    python tools/benchmark.py configs/hrnet_w48_cityscapes.py \\
        --reference mmseg::hrnet/fcn_hr48_4xb2-80k_cityscapes-512x1024.py \\
        --shape 1 3 512 1024 --repeats 5 --optimize \\
        --train-batch 2 --train-shape 512 512 --with-cp-memory --json out.json

What it does:

1. builds our model from CONFIG and, with ``--reference``, the reference model (a path, or
   ``mmseg::<path>`` / ``mmdet::<path>`` inside the installed package's ``.mim/configs``);
   checkpoint loading from the configs is switched off, SyncBN becomes BN;
2. gives both the SAME weights: our random init with BN statistics calibrated on one random
   batch (so the logits have realistic magnitudes), loaded into the reference with a strict
   check; when the keys differ (BiSeNetV2) the reference's weights go the other way through
   our converter, again strictly;
3. inference (``torch.no_grad``, eval, ``mode='tensor'``: backbone + decode head logits) of
   ours, ours through :func:`mmseg_hrplus.apis.optimize_for_inference` (``--optimize``) and
   the reference (also optimised with ``--optimize-reference``), one warm-up call each, then
   ``--repeats`` rounds in which every variant runs once (the order rotates per round);
   reports min and median, ``speedup = reference time / our time`` and the max abs logit
   difference to the reference;
4. one training step (``model.loss`` + backward + SGD with momentum) of ours and the
   reference, interleaved the same way (``--train-repeats``, 0 to skip); with
   ``--train-winograd`` also ours built with the backbone's
   ``conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d')`` (same weights, loaded strictly);
   ``--winograd`` adds ``optimize_for_inference(winograd=True)`` to the inference variants
   (autotuned on the benchmark input: its per-shape direct/Winograd decisions are reported);
5. with ``--with-cp-memory``, the peak memory of a training step with and without
   ``model.backbone.with_cp=True``, each in its own subprocess (the RSS high-water mark is
   process-wide): the peak RSS over the step minus the RSS before it (CUDA: max allocated
   minus allocated before); with ``--train-winograd`` also for ours with Winograd convs.

The report starts with the CPU (model, ISA level, oneDNN version:
:func:`mmseg_hrplus.apis.cpu_info.cpu_info`). Ratios > 1 mean ours is faster. Peak memory on
CPU is RSS (``VmHWM``; ``ru_maxrss`` if ``/proc`` is absent), on CUDA
``torch.cuda.max_memory_allocated``.
"""
import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import mmseg_hrplus  # noqa: E402,F401  (registers our models, compat)
from mmseg_hrplus.apis.cpu_info import cpu_info  # noqa: E402
from mmseg_hrplus.apis.optimize import optimize_for_inference  # noqa: E402
from mmseg_hrplus.models.layers import (clear_winograd_decisions,  # noqa: E402
                                        winograd_decision_records)
from mmseg_hrplus.apis.runner import build_config_model  # noqa: E402

FACTORIZE_CHOICES = ('auto', 'on', 'off', 'both')
WINOGRAD_CONV_CFG = dict(type='mmseg_hrplus.WinogradConv2d')


def resolve_config(path: str) -> str:
    """A file path, or ``pkg::rel/path.py`` inside the installed ``pkg``'s ``.mim/configs``."""
    if '::' not in path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config {path!r} does not exist')
        return path
    package, rel = path.split('::', 1)
    module = __import__(package)
    full = Path(module.__file__).parent / '.mim' / 'configs' / rel
    if not full.is_file():
        raise FileNotFoundError(f'config {path!r}: no {full}')
    return str(full)


def _drop_checkpoints(cfg_model) -> None:
    """No checkpoint download/loading: the benchmark brings its own weights."""
    cfg_model['pretrained'] = None
    backbone = cfg_model.get('backbone', {})
    init = backbone.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        backbone['init_cfg'] = None
    backbone.pop('pretrained', None)


def build_model(config: str, device: str, with_cp: Optional[bool] = None,
                conv_cfg: Optional[dict] = None) -> nn.Module:
    """Build the model of ``config`` (random init, no checkpoint, SyncBN -> BN) on
    ``device``; ``conv_cfg``, if given, replaces the backbone's."""
    from mmengine.config import Config
    cfg = Config.fromfile(resolve_config(config))
    _drop_checkpoints(cfg.model)
    if with_cp is not None:
        cfg.model.backbone['with_cp'] = with_cp
    if conv_cfg is not None:
        cfg.model.backbone['conv_cfg'] = conv_cfg
    model = build_config_model(cfg)
    model.init_weights()
    return model.to(device)


@torch.no_grad()
def calibrate_bn(model: nn.Module, shape: Sequence[int], device: str) -> None:
    """Set every BN's running statistics to those of one random batch (``shape``, batch
    forced >= 2), through ``model(x, mode='tensor')`` in train mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    was_training = model.training
    model.train()
    for m in norms:
        m.train()
        m.momentum = 1.0
    n, c, h, w = shape
    model(torch.randn(max(n, 2), c, h, w, device=device), mode='tensor')
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)


def _converters() -> List[Tuple[str, Callable]]:
    from mmseg_hrplus.converters.mmseg_bisenetv2 import convert_mmseg_bisenetv2
    return [('convert_mmseg_bisenetv2', convert_mmseg_bisenetv2)]


def share_weights(ours: nn.Module, ref: nn.Module, calib_shape: Sequence[int],
                  device: str) -> str:
    """Give both models the same weights; returns how (for the report).

    Raises:
        RuntimeError: when neither a direct strict load nor a known converter matches.
    """
    calibrate_bn(ours, calib_shape, device)
    try:
        ref.load_state_dict(ours.state_dict(), strict=True)
        return 'ours -> reference (state dict, strict)'
    except RuntimeError as direct_error:
        errors = [f'direct: {str(direct_error)[:300]}']
    calibrate_bn(ref, calib_shape, device)
    for name, convert in _converters():
        try:
            ours.load_state_dict(convert(ref.state_dict()), strict=True)
            return f'reference -> ours ({name}, strict)'
        except (RuntimeError, ValueError) as error:
            errors.append(f'{name}: {str(error)[:300]}')
    raise RuntimeError('cannot give the two models the same weights: ' + ' | '.join(errors))


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: int, device: str,
                      warmup: int = 1) -> Dict[str, List[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then ``repeats``
    rounds in which every function runs once, the order rotating by one per round."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: Dict[str, List[float]], baseline: Optional[str]) -> dict:
    """min/median per variant and, against ``baseline``, speedup (baseline time / time) and
    time ratio (time / baseline time) of both statistics."""
    out: dict = {
        'times_s': times,
        'min_s': {k: min(v) for k, v in times.items()},
        'median_s': {k: statistics.median(v) for k, v in times.items()},
    }
    if baseline is not None:
        out['speedup'] = {}
        out['time_ratio'] = {}
        for name in times:
            if name == baseline:
                continue
            out['speedup'][name] = {
                s: out[f'{s}_s'][baseline] / out[f'{s}_s'][name] for s in ('min', 'median')}
            out['time_ratio'][name] = {
                s: out[f'{s}_s'][name] / out[f'{s}_s'][baseline] for s in ('min', 'median')}
    return out


def make_batch(model: nn.Module, shape: Sequence[int], device: str,
               seed: int = 0) -> Tuple[torch.Tensor, list]:
    """Random normalised images ``(N, C, H, W)`` and SegDataSamples with random labels."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    inputs = torch.randn(n, c, h, w, generator=gen).to(device)
    num_classes = getattr(getattr(model, 'decode_head', None), 'num_classes', 19)
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w),
                                             ori_shape=(h, w)))
        label = torch.randint(0, num_classes, (1, h, w), generator=gen)
        sample.gt_sem_seg = PixelData(data=label.to(device))
        samples.append(sample)
    return inputs, samples


def train_step_fn(model: nn.Module, inputs: torch.Tensor, samples: list,
                  set_to_none: bool = True) -> Callable[[], float]:
    """One training step: ``model.loss`` -> summed loss -> backward -> SGD (lr 0.01, momentum
    0.9, weight decay 5e-4, as mmseg's HRNet/BiSeNetV2 recipes)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=5e-4)

    def step() -> float:
        optim.zero_grad(set_to_none=set_to_none)
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        optim.step()
        return float(loss.detach())

    return step


def infer_fn(model: nn.Module, inputs: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(inputs, mode='tensor')
    return run


def _logits(out) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


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
                 device: str, winograd: bool = False) -> dict:
    """Peak memory of one training step (the second: grads and momentum already exist) in
    this process, MiB: ``peak - before``, with freed heap pages returned to the OS first.
    ``winograd``: build with the backbone's ``conv_cfg`` set to WinogradConv2d."""
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


def run_memory_probe(config: str, with_cp: bool, args: argparse.Namespace,
                     winograd: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), config, '--memory-probe',
           '1' if with_cp else '0', '--train-batch', str(args.train_batch), '--train-shape',
           *map(str, args.train_shape), '--device', args.device]
    if winograd:
        cmd.append('--train-winograd')
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=str(REPO))
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='our config')
    parser.add_argument('--reference', help='reference config (path or mmseg::/mmdet:: path)')
    parser.add_argument('--shape', type=int, nargs=4, default=[1, 3, 512, 1024],
                        metavar=('N', 'C', 'H', 'W'), help='inference input shape')
    parser.add_argument('--repeats', type=int, default=5, help='timed inference rounds')
    parser.add_argument('--optimize', action='store_true',
                        help='also time ours through optimize_for_inference')
    parser.add_argument('--optimize-reference', action='store_true',
                        help='also time the reference through optimize_for_inference '
                        '(BN folding + channels_last, no head factorisation)')
    parser.add_argument('--winograd', action='store_true',
                        help='also time ours through optimize_for_inference(winograd=True) '
                        '(Winograd F(4x4,3x3) for wide 3x3 convs)')
    parser.add_argument('--compile', action='store_true',
                        help='also time ours through optimize_for_inference(compile=True) '
                        '(inductor with freezing; the compile time is reported, not timed)')
    parser.add_argument('--factorize-head', choices=FACTORIZE_CHOICES, default='auto',
                        help="head factorisation of the optimised model; 'both' times the "
                        'two forms')
    parser.add_argument('--skip-inference', action='store_true',
                        help='only the training step (and --with-cp-memory)')
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--train-shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'))
    parser.add_argument('--train-repeats', type=int, default=None,
                        help='timed training rounds (default: --repeats; 0 skips training)')
    parser.add_argument('--train-winograd', action='store_true',
                        help='also time a training step of ours built with the backbone\'s '
                        'conv_cfg=dict(type="mmseg_hrplus.WinogradConv2d")')
    parser.add_argument('--with-cp-memory', action='store_true',
                        help='peak training memory with and without backbone.with_cp, one '
                        'subprocess per variant')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--memory-probe', choices=('0', '1'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f'--repeats={args.repeats} must be >= 1')
    if args.train_repeats is None:
        args.train_repeats = args.repeats
    return args


def _fmt_row(name: str, section: dict) -> str:
    row = f'  {name:<26} min {section["min_s"][name]:8.4f} s  median ' \
          f'{section["median_s"][name]:8.4f} s'
    if name in section.get('speedup', {}):
        sp = section['speedup'][name]
        row += f'  speedup vs reference: min {sp["min"]:.3f}x  median {sp["median"]:.3f}x'
    if name in section.get('max_abs_diff', {}):
        row += f'  max|diff| {section["max_abs_diff"][name]:.2e}'
    return row


def run_inference(args: argparse.Namespace, ours: nn.Module, ref: Optional[nn.Module],
                  device: str) -> dict:
    """Time the inference variants (see the module notes); returns the report section."""
    inputs = torch.randn(*args.shape, generator=torch.Generator().manual_seed(args.seed))
    inputs = inputs.to(device)
    models: Dict[str, nn.Module] = {'ours': ours}
    if args.optimize:
        forms = {'auto': ['auto'], 'on': [True], 'off': [False],
                 'both': [False, True]}[args.factorize_head]
        for form in forms:
            name = 'ours_optimized' + ('_factorized' if form is True and
                                       args.factorize_head == 'both' else '')
            models[name] = optimize_for_inference(ours, factorize_head=form)
    if args.winograd:
        clear_winograd_decisions()
        models['ours_optimized_winograd'] = optimize_for_inference(ours, winograd=True,
                                                                   example_input=inputs)
    if args.compile:
        models['ours_optimized_compiled'] = optimize_for_inference(ours, compile=True)
    if ref is not None:
        models['reference'] = ref
        if args.optimize_reference:
            models['reference_optimized'] = optimize_for_inference(ref, factorize_head=False)
    fns = {name: infer_fn(m, inputs) for name, m in models.items()}
    logits, first_call_s = {}, {}
    for name, fn in fns.items():  # the first call of a compiled model compiles it
        start = time.perf_counter()
        logits[name] = _logits(fn()).float()
        first_call_s[name] = time.perf_counter() - start
    times = interleaved_times(fns, args.repeats, device)
    inference = summarise(times, 'reference' if ref is not None else None)
    inference['shape'] = list(args.shape)
    inference['first_call_s'] = first_call_s
    anchor = logits['reference'] if ref is not None else logits['ours']
    inference['max_abs_diff'] = {
        name: float((value - anchor).abs().max()) for name, value in logits.items()
        if value is not anchor}
    inference['logit_abs_max'] = float(anchor.abs().max())
    if args.winograd:
        inference['winograd_decisions'] = winograd_decision_records()
        for d in inference['winograd_decisions']:
            print(f'  winograd autotune {d["in_channels"]}->{d["out_channels"]} '
                  f'{d["batch"]}x{d["height"]}x{d["width"]}: {d["choice"]} (winograd '
                  f'{d["winograd_s"] * 1e3:.2f} ms, direct {d["direct_s"] * 1e3:.2f} ms)')
    print(f'inference {tuple(args.shape)} on {device}, {torch.get_num_threads()} threads, '
          f'{args.repeats} interleaved rounds')
    for name in times:
        print(_fmt_row(name, inference))
    return inference


def winograd_training_variant(config: str, ours: nn.Module, device: str) -> nn.Module:
    """``config`` built with ``conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d')`` in its
    backbone (the way a user switches it on), with ``ours``' weights loaded strictly."""
    model = build_model(config, device, conv_cfg=WINOGRAD_CONV_CFG)
    model.load_state_dict(ours.state_dict(), strict=True)
    return model.train(ours.training)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        result = memory_probe(args.config, args.memory_probe == '1', args.train_batch,
                              args.train_shape, args.device, winograd=args.train_winograd)
        print(json.dumps(result))
        return result

    device = args.device
    torch.manual_seed(args.seed)
    ours = build_model(args.config, device)
    ref = build_model(args.reference, device) if args.reference else None
    calib = (2, args.shape[1], max(64, args.shape[2] // 2), max(64, args.shape[3] // 2))
    report: dict = dict(
        config=args.config, reference=args.reference, device=device,
        threads=torch.get_num_threads(), torch=torch.__version__,
        python=platform.python_version(), machine=platform.machine(), cpu=cpu_info(),
        command=' '.join(['python', 'tools/benchmark.py'] + list(argv if argv is not None
                                                                 else sys.argv[1:])))
    print(f'CPU: {report["cpu"]["summary"]}')
    if ref is not None:
        report['weights'] = share_weights(ours, ref, calib, device)
    else:
        calibrate_bn(ours, calib, device)
    ours.eval()
    if ref is not None:
        ref.eval()

    # ---- inference
    models: Dict[str, nn.Module] = {'ours': ours}
    if ref is not None:
        models['reference'] = ref
    baseline = 'reference' if ref is not None else None
    if not args.skip_inference:
        report['inference'] = run_inference(args, ours, ref, device)
        report['peak_rss_mb_after_inference'] = peak_rss_mb()

    # ---- one training step
    if args.train_repeats > 0:
        shape = (args.train_batch, args.shape[1], *args.train_shape)
        if args.train_winograd:
            models['ours_winograd'] = winograd_training_variant(args.config, ours, device)
        steps = {}
        for name, model in models.items():
            batch_in, samples = make_batch(model, shape, device, seed=args.seed)
            steps[name] = train_step_fn(model, batch_in, samples)
        ttimes = interleaved_times(steps, args.train_repeats, device)
        train = summarise(ttimes, baseline)
        train['shape'] = list(shape)
        report['train'] = train
        report['peak_rss_mb_after_train'] = peak_rss_mb()
        print(f'training step {shape} (forward + loss + backward + SGD), '
              f'{args.train_repeats} interleaved rounds')
        for name in ttimes:
            print(_fmt_row(name, train))

    # ---- with_cp memory, one subprocess per variant
    if args.with_cp_memory:
        del models, ours, ref
        memory = {}
        configs = [('ours', args.config, False)] + (
            [('ours_winograd', args.config, True)] if args.train_winograd else []) + (
            [('reference', args.reference, False)] if args.reference else [])
        for name, config, winograd in configs:
            without = run_memory_probe(config, False, args, winograd)
            with_cp = run_memory_probe(config, True, args, winograd)
            memory[name] = dict(without=without, with_cp=with_cp,
                                ratio=with_cp['step_peak_mb'] / without['step_peak_mb'])
            print(f'  {name}: training-step peak memory {without["step_peak_mb"]:.0f} MiB, '
                  f'with_cp {with_cp["step_peak_mb"]:.0f} MiB (ratio {memory[name]["ratio"]:.3f}'
                  f', {without["method"]})')
        report['with_cp_memory'] = memory

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f'wrote {args.json}')
    return report


if __name__ == '__main__':
    main()
