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
   ours, ours through :func:`mmseg_hrplus.deploy.optimize_for_inference` (``--optimize``) and
   the reference (also optimised with ``--optimize-reference``), one warm-up call each, then
   ``--repeats`` rounds in which every variant runs once (the order rotates per round);
   reports min and median, ``speedup = reference time / our time``, the max abs logit
   difference to the reference and, for ``--compile``, the first call's time (the compile)
   with what inductor's FX graph cache did in it (graphs loaded = hits, compiled = misses;
   :mod:`mmseg_hrplus.deploy.inductor`);
4. one training step (``model.loss`` + backward + SGD with momentum) of ours and the
   reference, interleaved the same way (``--train-repeats``, 0 to skip); with
   ``--train-winograd`` also ours built with the backbone's
   ``conv_cfg=dict(type='mmseg_hrplus.WinogradConv2d')`` (same weights, loaded strictly);
   ``--winograd`` adds ``optimize_for_inference(winograd=True)`` to the inference variants
   (autotuned on the benchmark input: its per-shape direct/Winograd decisions are reported);
5. with ``--onnxruntime``, our model (the ``--optimize`` one, else the plain one) exported
   to ONNX at the inference shape and run by onnxruntime (CPU execution provider,
   ``--threads`` intra-op threads) in the same interleaved rounds; its row also gives the
   max abs logit difference to the model it was exported from; ``--openvino`` does the same
   with OpenVINO (the ONNX export converted, compiled with ``--threads`` inference threads,
   precision f32 and hint LATENCY set explicitly: :mod:`mmseg_hrplus.deploy.openvino`), and
   reports the precision, threads and hint the compiled model reads back;
   ``--openvino-precision`` (repeatable: f32, bf16, int8) times OpenVINO at each precision
   given (rows ``openvino``, ``openvino_bf16``, ``openvino_int8``; int8 calibrated on a few
   random arrays: right for speed, not for accuracy; bf16 only on CPUs with native bf16), each
   reporting the precision read back and how many convolutions run int8; ``--bf16`` times ours
   optimised, under bf16 autocast and compiled (:func:`mmseg_hrplus.deploy.bf16.bf16_inference`,
   row ``ours_bf16_compiled``; CPUs with native bf16 only);
6. with ``--with-cp-memory``, the peak memory of a training step with and without
   ``model.backbone.with_cp=True``, each in its own process (``python -m
   mmseg_hrplus.benchmark.memory``: the RSS high-water mark is process-wide): the peak RSS
   over the step minus the RSS before it (CUDA: max allocated minus allocated before); with
   ``--train-winograd`` also for ours with Winograd convs.

The parts live in :mod:`mmseg_hrplus.benchmark`; this file is the command line. The report
starts with the CPU (model, ISA level, oneDNN version:
:func:`mmseg_hrplus.utils.cpu_info.cpu_info`). Ratios > 1 mean ours is faster. Peak memory on
CPU is RSS (``VmHWM``; ``ru_maxrss`` if ``/proc`` is absent), on CUDA
``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn

import mmseg_hrplus  # noqa: F401  (registers our models, the CPU DDP wrapper)
from mmseg_hrplus.benchmark.build import WINOGRAD_CONV_CFG, build_model
from mmseg_hrplus.benchmark.markdown import (git_commit, render_benchmark, section_key,
                                             write_section)
from mmseg_hrplus.benchmark.memory import peak_rss_mb, run_memory_probe
from mmseg_hrplus.benchmark.steps import infer_fn, make_batch, train_step_fn
from mmseg_hrplus.benchmark.timing import interleaved_times, summarise
from mmseg_hrplus.benchmark.weights import calibrate_bn, share_weights
from mmseg_hrplus.deploy.inductor import inductor_cache_counts, inductor_cache_dir
from mmseg_hrplus.deploy.bf16 import bf16_inference
from mmseg_hrplus.deploy.optimize import optimize_for_inference
from mmseg_hrplus.deploy.precision import PRECISIONS, check_backend_precision
from mmseg_hrplus.models.layers import clear_winograd_decisions, winograd_decision_records
from mmseg_hrplus.utils.cpu_info import cpu_info

REPO = Path(__file__).resolve().parents[1]

FACTORIZE_CHOICES = ('auto', 'on', 'off', 'both')
#: The on/off flags: what each adds to the run.
SWITCHES = (
    ('--optimize', 'also time ours through optimize_for_inference'),
    ('--optimize-reference', 'also time the reference through optimize_for_inference (BN '
     'folding + channels_last, no head factorisation)'),
    ('--winograd', 'also time ours through optimize_for_inference(winograd=True) (Winograd '
     'F(4x4,3x3) for wide 3x3 convs)'),
    ('--compile', 'also time ours through optimize_for_inference(compile=True) (inductor with '
     'freezing; the compile time is reported, not timed)'),
    ('--onnxruntime', 'also time onnxruntime (CPU, --threads intra-op threads) on our model '
     'exported to ONNX (the --optimize one, else the plain one)'),
    ('--openvino', 'also time OpenVINO (CPU, f32, hint LATENCY, --threads threads) on the same '
     'export'),
    ('--skip-inference', 'only the training step (and --with-cp-memory)'),
    ('--train-winograd', 'also time a training step of ours built with the backbone\'s '
     'conv_cfg=dict(type="mmseg_hrplus.WinogradConv2d")'),
    ('--with-cp-memory', 'peak training memory with and without backbone.with_cp, one process '
     'per variant'),
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='our config')
    parser.add_argument('--reference', help='reference config (path or mmseg::/mmdet:: path)')
    parser.add_argument('--shape', type=int, nargs=4, default=[1, 3, 512, 1024],
                        metavar=('N', 'C', 'H', 'W'), help='inference input shape')
    parser.add_argument('--repeats', type=int, default=5, help='timed inference rounds')
    for flag, help_text in SWITCHES:
        parser.add_argument(flag, action='store_true', help=help_text)
    parser.add_argument('--openvino-precision', action='append', choices=PRECISIONS,
                        help='time OpenVINO at this precision (repeatable; implies --openvino; '
                        'int8 calibrated on random arrays, for speed only)')
    parser.add_argument('--bf16', action='store_true',
                        help='also time ours optimised under bf16 autocast, compiled (CPUs '
                        'with native bf16)')
    parser.add_argument('--factorize-head', choices=FACTORIZE_CHOICES, default='auto',
                        help="head factorisation of the optimised model; 'both' times the "
                        'two forms')
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--train-shape', type=int, nargs=2, default=[512, 512],
                        metavar=('H', 'W'))
    parser.add_argument('--train-repeats', type=int, default=None,
                        help='timed training rounds (default: --repeats; 0 skips training)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--markdown', metavar='PAGE',
                        help='write the results as a section of this Markdown page (e.g. '
                             'docs/benchmarks.md), replacing the section of the same command')
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f'--repeats={args.repeats} must be >= 1')
    if args.onnxruntime and args.device != 'cpu':
        parser.error(f"--onnxruntime runs on the CPU: it needs --device cpu, got "
                     f"{args.device!r}")
    if args.openvino_precision:
        args.openvino = True
    args.openvino_precisions = list(dict.fromkeys(args.openvino_precision or ['f32']))
    if args.openvino and args.device != 'cpu':
        parser.error(f"--openvino runs on the CPU: it needs --device cpu, got {args.device!r}")
    if args.bf16 and args.device != 'cpu':
        parser.error(f"--bf16 runs on the CPU: it needs --device cpu, got {args.device!r}")
    try:  # bf16 on a CPU without it: refused before anything is built
        if args.bf16:
            check_backend_precision('pytorch', 'bf16')
        if args.openvino and 'bf16' in args.openvino_precisions:
            check_backend_precision('openvino', 'bf16')
    except ValueError as err:
        parser.error(str(err))
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
        diff = section['max_abs_diff'][name]
        row += f'  max|diff| {diff:.2e}'
        if section.get('logit_abs_max'):
            row += f' ({diff / section["logit_abs_max"]:.2e} rel)'
    return row


def _inference_models(args: argparse.Namespace, ours: nn.Module, ref: Optional[nn.Module],
                      inputs: torch.Tensor) -> Dict[str, nn.Module]:
    """The inference variants the flags ask for, by report name."""
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
    if args.bf16:
        models['ours_bf16_compiled'] = bf16_inference(optimize_for_inference(ours))
    if ref is not None:
        models['reference'] = ref
        if args.optimize_reference:
            models['reference_optimized'] = optimize_for_inference(ref, factorize_head=False)
    return models


def run_inference(args: argparse.Namespace, ours: nn.Module, ref: Optional[nn.Module],
                  device: str) -> dict:
    """Time the inference variants (see the module notes); returns the report section."""
    inputs = torch.randn(*args.shape, generator=torch.Generator().manual_seed(args.seed))
    inputs = inputs.to(device)
    models = _inference_models(args, ours, ref, inputs)
    fns = {name: infer_fn(m, inputs) for name, m in models.items()}
    onnx_source, prepare_s = None, None
    if args.onnxruntime:
        from mmseg_hrplus.benchmark.onnxruntime_peer import onnxruntime_infer_fn
        onnx_source = 'ours_optimized' if 'ours_optimized' in models else 'ours'
        fns['onnxruntime'], prepare_s = onnxruntime_infer_fn(
            models[onnx_source], inputs, args.threads or torch.get_num_threads())
    ov_runs = {}  # row name -> (precision, export + compile seconds, properties)
    if args.openvino:
        from mmseg_hrplus.benchmark.openvino_peer import openvino_infer_fn
        onnx_source = 'ours_optimized' if 'ours_optimized' in models else 'ours'
        for precision in args.openvino_precisions:
            row = 'openvino' + ('' if precision == 'f32' else f'_{precision}')
            fns[row], prepare, properties = openvino_infer_fn(
                models[onnx_source], inputs, args.threads or torch.get_num_threads(), precision)
            ov_runs[row] = (precision, prepare, properties)
    logits, first_call_s, compile_cache = {}, {}, None
    for name, fn in fns.items():  # the first call of a compiled model compiles it
        cache_before = inductor_cache_counts()
        start = time.perf_counter()
        logits[name] = fn().float()
        first_call_s[name] = time.perf_counter() - start
        if name == 'ours_optimized_compiled':
            compile_cache = {k: n - cache_before[k]
                             for k, n in inductor_cache_counts().items()}
    times = interleaved_times(fns, args.repeats, device)
    inference = summarise(times, 'reference' if ref is not None else None)
    inference['shape'] = list(args.shape)
    inference['first_call_s'] = first_call_s
    if compile_cache is not None:
        inference['compile_cache'] = dict(fx_graphs=compile_cache, dir=inductor_cache_dir())
    anchor = logits['reference'] if ref is not None else logits['ours']
    inference['max_abs_diff'] = {
        name: float((value - anchor).abs().max()) for name, value in logits.items()
        if value is not anchor}
    inference['logit_abs_max'] = float(anchor.abs().max())
    if args.onnxruntime:
        import onnxruntime
        inference['onnxruntime'] = dict(
            version=onnxruntime.__version__, exported=onnx_source, export_and_load_s=prepare_s,
            max_abs_diff_vs_exported=float((logits['onnxruntime'] - logits[onnx_source])
                                           .abs().max()))
    for row, (precision, prepare, properties) in ov_runs.items():
        inference[row] = dict(
            properties, requested=precision, exported=onnx_source, export_and_load_s=prepare,
            max_abs_diff_vs_exported=float((logits[row] - logits[onnx_source]).abs().max()))
    if args.bf16:
        inference['ours_bf16_compiled_precision'] = dict(
            precision='bf16 (autocast: convs in bf16, logits f32)', isa=cpu_info()['isa'])
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
    if args.compile:
        graphs = ', '.join(f'{n} {k}' for k, n in compile_cache.items() if n)
        print(f'  ours_optimized_compiled first call (compiles): '
              f'{first_call_s["ours_optimized_compiled"]:.1f} s; inductor FX graph cache: '
              f'{graphs or "not used"} ({inference["compile_cache"]["dir"]})')
    if args.onnxruntime:
        ort_report = inference['onnxruntime']
        print(f'  onnxruntime {ort_report["version"]} (export + session {prepare_s:.1f} s) vs '
              f'{onnx_source}: max|diff| {ort_report["max_abs_diff_vs_exported"]:.2e}')
    for row, (precision, prepare, properties) in ov_runs.items():
        from mmseg_hrplus.deploy.openvino import describe_properties
        print(f'  {"" if row == "openvino" else row + " (" + precision + "): "}'
              f'{describe_properties(properties)} (export + compile {prepare:.1f} s) vs '
              f'{onnx_source}: max|diff| {inference[row]["max_abs_diff_vs_exported"]:.2e}')
    if args.bf16:
        print(f'  ours_bf16_compiled: {inference["ours_bf16_compiled_precision"]["precision"]} '
              f'({inference["ours_bf16_compiled_precision"]["isa"]} CPU), first call '
              f'(compiles) {first_call_s["ours_bf16_compiled"]:.1f} s')
    return inference


def run_training(args: argparse.Namespace, models: Dict[str, nn.Module], baseline: Optional[str],
                 device: str) -> dict:
    """Time one training step of each model, interleaved; returns the report section."""
    shape = (args.train_batch, args.shape[1], *args.train_shape)
    steps = {}
    for name, model in models.items():
        batch_in, samples = make_batch(model, shape, device, seed=args.seed)
        steps[name] = train_step_fn(model, batch_in, samples)
    ttimes = interleaved_times(steps, args.train_repeats, device)
    train = summarise(ttimes, baseline)
    train['shape'] = list(shape)
    print(f'training step {shape} (forward + loss + backward + SGD), '
          f'{args.train_repeats} interleaved rounds')
    for name in ttimes:
        print(_fmt_row(name, train))
    return train


def run_with_cp_memory(args: argparse.Namespace) -> dict:
    """Training-step peak memory with and without ``with_cp``, one process each."""
    memory = {}
    configs = [('ours', args.config, False)] + (
        [('ours_winograd', args.config, True)] if args.train_winograd else []) + (
        [('reference', args.reference, False)] if args.reference else [])
    for name, config, winograd in configs:
        without, with_cp = (
            run_memory_probe(config, cp, args.train_batch, args.train_shape, args.device,
                             winograd, args.threads, cwd=str(REPO)) for cp in (False, True))
        memory[name] = dict(without=without, with_cp=with_cp,
                            ratio=with_cp['step_peak_mb'] / without['step_peak_mb'])
        print(f'  {name}: training-step peak memory {without["step_peak_mb"]:.0f} MiB, '
              f'with_cp {with_cp["step_peak_mb"]:.0f} MiB (ratio {memory[name]["ratio"]:.3f}'
              f', {without["method"]})')
    return memory


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
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
        ref.eval()
    else:
        calibrate_bn(ours, calib, device)
    ours.eval()

    if not args.skip_inference:
        report['inference'] = run_inference(args, ours, ref, device)
        report['peak_rss_mb_after_inference'] = peak_rss_mb()

    if args.train_repeats > 0:
        models: Dict[str, nn.Module] = {'ours': ours}
        if ref is not None:
            models['reference'] = ref
        if args.train_winograd:  # the way a user switches it on, with ours' weights
            winograd = build_model(args.config, device, conv_cfg=WINOGRAD_CONV_CFG)
            winograd.load_state_dict(ours.state_dict(), strict=True)
            models['ours_winograd'] = winograd
        report['train'] = run_training(args, models, 'reference' if ref is not None else None,
                                       device)
        report['peak_rss_mb_after_train'] = peak_rss_mb()
        del models

    if args.with_cp_memory:
        del ours, ref
        report['with_cp_memory'] = run_with_cp_memory(args)

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f'wrote {args.json}')
    if args.markdown:
        argv_used = list(argv if argv is not None else sys.argv[1:])
        write_section(Path(args.markdown), section_key(['tools/benchmark.py'] + argv_used),
                        render_benchmark(report, commit=git_commit(REPO)))
        print(f'wrote its section of {args.markdown}')
    return report


if __name__ == '__main__':
    main()
