"""HRNet fusion ablation: the same config trained per seed and per fusion variant, then compared.

The variants are the four combinations of :class:`~mmseg_hrplus.models.backbones.hrnet.HRNet`'s
``fuse_order`` ('conv_first' | 'upsample_first') and ``new_branch`` ('from_lowest' |
'from_all'); the named modes are two of them: 'official' = conv_first/from_lowest,
'paper' = upsample_first/from_all. A run is identified by its variant and seed only, so
``--modes official`` and ``--modes conv_first/from_lowest`` share (and reuse) the same run.

Pieces (the CLI is ``projects/fusion_ablation/run.py``, run as
``python -m projects.fusion_ablation.run`` from the repository root):

* :func:`parse_modes`, :func:`check_seeds`: validate the request;
* :func:`plan_runs`: the run matrix, seed-major (seed 0 of every variant, then seed 1, ...), so a
  matrix stopped early still holds complete pairs;
* :func:`run_matrix`: trains every run whose ``result.json`` is missing (resumable), through a
  ``train`` callable such as :func:`subprocess_trainer` (``tools/train.py`` in a child process);
* :func:`read_run_log`: final mIoU and loss curve from mmengine's json scalars log;
* :func:`summarise`, :func:`format_markdown`, :func:`plot_ablation`: statistics, table, figure.

Reproducibility: each run sets ``randomness.seed=<seed>``, ``randomness.deterministic=True`` and
the train sampler's ``seed=<seed>`` (the data order and, through tools/train.py's
``IterationSeedHook``, the augmentations of iteration ``i`` are the same for every variant of a
seed). Variants of one seed share the data stream; their initial weights are the same where
their parameters are (the two fuse orders have identical parameter shapes, so conv_first and
upsample_first runs with the same ``new_branch`` start from identical weights), while
'from_all' adds modules and so shifts the random draws of the modules built after them.
"""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence

from mmseg_hrplus.models.backbones.hrnet import (ARCH_PRESETS, FUSE_ORDERS, FUSION_MODES,
                                                 NEW_BRANCH_RULES)

#: The variant every other one is compared with (paired per seed).
REFERENCE_VARIANT = FUSION_MODES['official']
#: Name of the per-run result file; its presence marks a finished run.
RESULT_FILE = 'result.json'


class Variant(NamedTuple):
    """One (fuse_order, new_branch) combination of HRNet's fusion."""

    fuse_order: str
    new_branch: str

    @property
    def combo(self) -> str:
        """'fuse_order/new_branch', as accepted by ``--modes``."""
        return f'{self.fuse_order}/{self.new_branch}'

    @property
    def slug(self) -> str:
        """Folder name of the variant's runs."""
        return f'{self.fuse_order}-{self.new_branch}'

    @property
    def label(self) -> str:
        """'official (conv_first/from_lowest)' for named modes, else the combination."""
        for name, pair in FUSION_MODES.items():
            if tuple(pair) == tuple(self):
                return f'{name} ({self.combo})'
        return self.combo

    def cfg_options(self) -> Dict[str, str]:
        """Config overrides that select this variant in ``model.backbone``."""
        return {'model.backbone.fuse_order': self.fuse_order,
                'model.backbone.new_branch': self.new_branch}


ALL_VARIANTS = tuple(Variant(order, rule) for order in FUSE_ORDERS for rule in NEW_BRANCH_RULES)
#: Every value ``--modes`` accepts.
ALLOWED_MODES = tuple(FUSION_MODES) + tuple(v.combo for v in ALL_VARIANTS)


def parse_modes(modes: Optional[Sequence[str]], all_combinations: bool = False) -> List[Variant]:
    """The variants named by ``modes`` (named modes or 'fuse_order/new_branch'), in order,
    without repeats; ``all_combinations`` appends the four combinations.

    Raises:
        ValueError: an unknown mode (the message lists the allowed values), or no mode at all.
    """
    variants: List[Variant] = []
    for mode in modes or ():
        if mode in FUSION_MODES:
            variant = Variant(*FUSION_MODES[mode])
        elif mode in ALLOWED_MODES:
            variant = Variant(*mode.split('/'))
        else:
            raise ValueError(f'--modes: unknown mode {mode!r}; allowed values: '
                             f'{", ".join(ALLOWED_MODES)}')
        if variant not in variants:
            variants.append(variant)
    if all_combinations:
        variants += [v for v in ALL_VARIANTS if v not in variants]
    if not variants:
        raise ValueError(f'no fusion mode given: pass --modes (allowed values: '
                         f'{", ".join(ALLOWED_MODES)}) or --all-combinations')
    return variants


def check_seeds(seeds: int) -> None:
    """A paired comparison with a standard deviation needs two seeds or more."""
    if seeds < 2:
        raise ValueError(f'--seeds {seeds}: a paired comparison with a standard deviation needs '
                         f'at least 2 seeds')


def upsample_first_extra_macs(arch: str, shape: Sequence[int]) -> int:
    """Multiply-adds that 'upsample_first' adds to the 1x1 fusion convs of a preset, per image.

    A lower stream ``j`` joining a higher one ``i`` goes through a ``C_j -> C_i`` 1x1 conv at
    ``H_j x W_j`` (conv_first) or at ``H_i x W_i`` (upsample_first, 4**(j - i) times the
    pixels), in every HR module of stages 2-4:
    ``sum modules * C_i * C_j * (H_i W_i - H_j W_j)``.

    Args:
        arch: a name in :data:`~mmseg_hrplus.models.backbones.hrnet.ARCH_PRESETS`.
        shape: input (H, W), both multiples of 32 (stream ``b`` is ``H / 2**(b + 2)``).
    """
    height, width = shape
    if height % 32 or width % 32:
        raise ValueError(f'shape={tuple(shape)}: H and W must be multiples of 32')
    preset = ARCH_PRESETS[arch]
    pixels = [(height >> (b + 2)) * (width >> (b + 2)) for b in range(4)]
    extra = 0
    for streams, modules in zip((2, 3, 4), preset.modules):
        channels = [preset.width * 2**b for b in range(streams)]
        for i in range(streams):
            for j in range(i + 1, streams):
                extra += modules * channels[i] * channels[j] * (pixels[i] - pixels[j])
    return extra


class Run(NamedTuple):
    """One training run of the matrix; ``work_dir`` is ``<root>/<variant slug>/seed<seed>``."""

    variant: Variant
    seed: int
    work_dir: Path
    deterministic: bool = True

    def cfg_options(self) -> Dict[str, object]:
        """Overrides for this run: variant, seed, deterministic algorithms, data order."""
        return {**self.variant.cfg_options(), 'randomness.seed': self.seed,
                'randomness.deterministic': self.deterministic,
                'train_dataloader.sampler.seed': self.seed}


def plan_runs(root: Path, variants: Sequence[Variant], seeds: Iterable[int],
              deterministic: bool = True) -> List[Run]:
    """The run matrix, seed-major: every variant of seed 0, then of seed 1, ...

    ``deterministic=False`` leaves ``torch.use_deterministic_algorithms`` off: needed on CUDA,
    where bilinear upsampling has no deterministic backward kernel and raises in that mode.
    """
    return [Run(v, s, Path(root) / v.slug / f'seed{s}', deterministic)
            for s in seeds for v in variants]


def _scalar_logs(work_dir: Path) -> List[Path]:
    """mmengine's json scalars logs (``<stamp>/vis_data/scalars.json``), oldest first."""
    return sorted(Path(work_dir).glob('*/vis_data/scalars.json'), key=os.path.getmtime)


def read_run_log(work_dir: Path) -> dict:
    """Final mIoU and loss curve of a finished run, from its newest json scalars log.

    Returns:
        ``dict(mIoU=..., aAcc=..., val_step=..., loss_steps=[...], losses=[...])``: the metrics
        of the last validation logged and the training loss at every logged iteration.

    Raises:
        FileNotFoundError: no scalars log, or no validation (mIoU) in the newest one.
    """
    logs = _scalar_logs(work_dir)
    if not logs:
        raise FileNotFoundError(f'no json scalars log (*/vis_data/scalars.json) in {work_dir}')
    steps, losses, final = [], [], None
    for line in logs[-1].read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if 'mIoU' in record:
            final = record
        elif 'loss' in record:
            steps.append(int(record['step']))
            losses.append(float(record['loss']))
    if final is None:
        raise FileNotFoundError(f'{logs[-1]} logs no validation mIoU: the run did not reach its '
                                f'validation step')
    return dict(mIoU=float(final['mIoU']), aAcc=float(final.get('aAcc', math.nan)),
                val_step=int(final['step']), loss_steps=steps, losses=losses)


def load_result(run: Run) -> Optional[dict]:
    """The run's saved result, or ``None`` when it has not finished."""
    path = run.work_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


TrainFn = Callable[[Run], None]


def subprocess_trainer(config: str, train_script: Path,
                       cfg_options: Optional[Dict[str, object]] = None,
                       nproc: int = 1) -> TrainFn:
    """A ``train(run)`` that runs ``train_script`` (tools/train.py) in a child process.

    The child's output goes to ``<run work_dir>/train.log``. ``nproc`` > 1 launches it with
    ``torch.distributed.run`` and ``--launcher pytorch`` (what tools/dist_train.sh does).

    Raises (from the returned callable):
        RuntimeError: the child failed; the message names its log.
    """
    def train(run: Run) -> None:
        options = {**(cfg_options or {}), **run.cfg_options()}
        cmd = [sys.executable]
        if nproc > 1:
            cmd += ['-m', 'torch.distributed.run', f'--nproc_per_node={nproc}']
        cmd += [str(train_script), str(config), '--work-dir', str(run.work_dir)]
        if nproc > 1:
            cmd += ['--launcher', 'pytorch']
        cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
        run.work_dir.mkdir(parents=True, exist_ok=True)
        log = run.work_dir / 'train.log'
        with open(log, 'w') as out:
            out.write(' '.join(cmd) + '\n')
            out.flush()
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=Path(train_script).resolve().parents[1])
        if code != 0:
            raise RuntimeError(f'training {run.variant.combo} seed {run.seed} failed (exit '
                               f'{code}); see {log}')
    return train


def runner_trainer(config: str, cfg_options: Optional[Dict[str, object]] = None) -> TrainFn:
    """A ``train(run)`` that trains in this process on a fresh mmengine Runner, as
    ``tools/train.py`` does (:func:`~mmseg_hrplus.engine.runner.load_config`, the training hooks of
    :func:`~mmseg_hrplus.engine.add_training_hooks`,
    :func:`~mmseg_hrplus.engine.runner.build_runner`).

    Cheaper than a child process for small runs (no interpreter start and imports per run).
    Each run gets its own ``experiment_name`` and visualizer name, so mmengine's logger and
    visualizer instances of different runs do not mix; the global deterministic-algorithms
    flag the run sets is put back afterwards.
    """
    def train(run: Run) -> None:
        import torch

        from mmseg_hrplus.engine import add_training_hooks
        from mmseg_hrplus.engine.runner import build_runner, load_config

        name = f'{run.variant.slug}_seed{run.seed}'
        # mmengine keeps one visualizer per name ('visualizer' in mmseg's runtime config): a
        # second run under the same name would log into the first run's folder
        options = {**(cfg_options or {}), **run.cfg_options(), 'experiment_name': name,
                   'visualizer.name': f'visualizer_{name}_{time.time_ns()}'}
        cfg = load_config(str(config), options, str(run.work_dir))
        add_training_hooks(cfg)
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            build_runner(cfg).train()
        finally:
            torch.use_deterministic_algorithms(deterministic)
    return train


def run_matrix(runs: Sequence[Run], train: Optional[TrainFn],
               log: Callable[[str], None] = print) -> List[dict]:
    """Train every run without a ``result.json`` and return all the results, in ``runs`` order.

    A result is ``read_run_log``'s dict plus ``variant`` (the combination), ``seed`` and
    ``train_seconds``; it is written to ``<work_dir>/result.json`` as soon as its run ends, so
    rerunning after an interruption trains only what is missing. ``train=None`` trains nothing
    and returns the finished runs only (a report of what is there).
    """
    results = []
    for i, run in enumerate(runs):
        result = load_result(run)
        if result is not None:
            log(f'[{i + 1}/{len(runs)}] {run.variant.combo} seed {run.seed}: done before, '
                f'mIoU {result["mIoU"]:.2f}')
        elif train is None:
            log(f'[{i + 1}/{len(runs)}] {run.variant.combo} seed {run.seed}: not finished, '
                'left out')
            continue
        else:
            log(f'[{i + 1}/{len(runs)}] {run.variant.combo} seed {run.seed}: training in '
                f'{run.work_dir}')
            start = time.time()
            train(run)
            result = dict(read_run_log(run.work_dir), variant=run.variant.combo,
                          seed=run.seed, train_seconds=round(time.time() - start, 1))
            (run.work_dir / RESULT_FILE).write_text(json.dumps(result, indent=1))
            log(f'    mIoU {result["mIoU"]:.2f} in {result["train_seconds"]:.0f} s')
        results.append(result)
    return results


def _mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (n - 1; NaN for n < 2)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def summarise(results: Sequence[dict]) -> dict:
    """Per-variant statistics and the paired differences to the official variant.

    Args:
        results: dicts with ``variant`` ('fuse_order/new_branch'), ``seed`` and ``mIoU``.

    Returns:
        ``dict(variants={combo: dict(n, mean, std, seeds, mIoU)},
        paired={combo: dict(n, mean, std, seeds, diffs)})``; ``paired`` compares every other
        variant with conv_first/from_lowest over the seeds both have (``diffs`` = variant
        minus official, per seed). Variants keep the order of first appearance.
    """
    by_variant: Dict[str, Dict[int, float]] = {}
    for result in results:
        by_variant.setdefault(result['variant'], {})[int(result['seed'])] = float(result['mIoU'])
    variants = {}
    for combo, per_seed in by_variant.items():
        seeds = sorted(per_seed)
        mean, std = _mean_std([per_seed[s] for s in seeds])
        variants[combo] = dict(n=len(seeds), mean=mean, std=std, seeds=seeds,
                               mIoU=[per_seed[s] for s in seeds])
    paired = {}
    reference = by_variant.get(Variant(*REFERENCE_VARIANT).combo)
    for combo, per_seed in by_variant.items():
        if reference is None or combo == Variant(*REFERENCE_VARIANT).combo:
            continue
        seeds = sorted(set(per_seed) & set(reference))
        if not seeds:
            continue
        diffs = [per_seed[s] - reference[s] for s in seeds]
        mean, std = _mean_std(diffs)
        paired[combo] = dict(n=len(seeds), mean=mean, std=std, seeds=seeds, diffs=diffs)
    return dict(variants=variants, paired=paired)


def _label(combo: str) -> str:
    return Variant(*combo.split('/')).label


def _pm(mean: float, std: float) -> str:
    return f'{mean:.2f} ± {std:.2f}' if not math.isnan(std) else f'{mean:.2f}'


def format_markdown(summary: dict, complexity: Optional[Dict[str, dict]] = None,
                    title: str = 'HRNet fusion ablation', notes: Sequence[str] = ()) -> str:
    """The markdown report: a per-variant table and a paired-difference table.

    Args:
        summary: :func:`summarise`'s output.
        complexity: combo -> ``dict(params=..., flops=..., shape=(H, W))`` of the model of that
            variant (shown as M params and GFLOPs at ``shape``); missing combos show '-'.
        title: the heading.
        notes: paragraphs written under the heading.
    """
    complexity = complexity or {}
    lines = [f'# {title}', '']
    for note in notes:
        lines += [note, '']
    lines += ['| fusion (fuse_order/new_branch) | mIoU mean ± std | n | mIoU per seed | '
              'params (M) | GFLOPs |', '|---|---|---|---|---|---|']
    for combo, stats in summary['variants'].items():
        cost = complexity.get(combo)
        params = f'{cost["params"] / 1e6:.4f}' if cost else '-'
        flops = (f'{cost["flops"] / 1e9:.3f} at {cost["shape"][0]}x{cost["shape"][1]}'
                 if cost else '-')
        per_seed = ', '.join(f'{s}: {m:.2f}' for s, m in zip(stats['seeds'], stats['mIoU']))
        lines.append(f'| {_label(combo)} | {_pm(stats["mean"], stats["std"])} | {stats["n"]} | '
                     f'{per_seed} | {params} | {flops} |')
    if summary['paired']:
        lines += ['', 'Paired difference per seed (variant − official, same seed: same data '
                  'order and augmentations), mIoU points:', '',
                  '| variant − official | mean ± std | n | per seed |', '|---|---|---|---|']
        for combo, stats in summary['paired'].items():
            per_seed = ', '.join(f'{s}: {d:+.2f}' for s, d in zip(stats['seeds'], stats['diffs']))
            mean = f'{stats["mean"]:+.2f}' + ('' if math.isnan(stats['std'])
                                               else f' ± {stats["std"]:.2f}')
            lines.append(f'| {_label(combo)} | {mean} | {stats["n"]} | {per_seed} |')
    return '\n'.join(lines) + '\n'


def plot_ablation(results: Sequence[dict], path: Path, title: str = 'HRNet fusion ablation'
                  ) -> None:
    """Write a two-panel PNG: training loss per variant (mean over seeds, min-max band) and
    final mIoU per seed (one line per seed joins its variants: the pairing)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    summary = summarise(results)
    combos = list(summary['variants'])
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=90)
    for combo in combos:
        curves = [r for r in results if r['variant'] == combo]
        steps = curves[0]['loss_steps']
        curves = [r['losses'] for r in curves if r['loss_steps'] == steps]
        columns = list(zip(*curves))
        mean = [sum(c) / len(c) for c in columns]
        line, = ax_loss.plot(steps, mean, label=f'{_label(combo)} (n={len(curves)})', lw=1.2)
        ax_loss.fill_between(steps, [min(c) for c in columns], [max(c) for c in columns],
                             color=line.get_color(), alpha=0.2, lw=0)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_ylabel('training loss (mean, min-max over seeds)')
    ax_loss.legend(fontsize=7)
    seeds = sorted({int(r['seed']) for r in results})
    for seed in seeds:
        xs, ys = [], []
        for x, combo in enumerate(combos):
            for r in results:
                if r['variant'] == combo and int(r['seed']) == seed:
                    xs.append(x)
                    ys.append(r['mIoU'])
        ax_miou.plot(xs, ys, marker='o', lw=0.8, label=f'seed {seed}')
    for x, combo in enumerate(combos):
        stats = summary['variants'][combo]
        ax_miou.errorbar([x + 0.12], [stats['mean']], yerr=[0 if math.isnan(stats['std'])
                                                            else stats['std']],
                         color='k', marker='_', ms=14, capsize=3)
    ax_miou.set_xticks(range(len(combos)))
    ax_miou.set_xticklabels([c.replace('/', '/\n') for c in combos], fontsize=7)
    ax_miou.set_xlim(-0.5, len(combos) - 0.5)
    ax_miou.set_ylabel('final val mIoU (black: mean ± std)')
    ax_miou.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
