"""projects/fusion_ablation/run.py and projects.fusion_ablation.ablation: validation,
statistics, report writing, resume, the FLOP cost of each fusion order and one tiny real run."""
import json
import math
from pathlib import Path

import pytest

from mmseg_hrplus.models.backbones.hrnet import ARCH_PRESETS
from projects.fusion_ablation import ablation as fa
from projects.fusion_ablation import run as cli
from tests.helpers.tiny_run import make_data

REPO = Path(__file__).resolve().parents[2]

QUICKSTART = str(REPO / 'configs' / 'quickstart' / 'hrnet_w18s_synthetic.py')
OFFICIAL, PAPER = 'conv_first/from_lowest', 'upsample_first/from_all'


def _cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_cli_rejects_unknown_mode_and_single_seed(capsys, tmp_path):
    base = [QUICKSTART, '--work-dir', str(tmp_path)]
    err = _cli_error(capsys, base + ['--seeds', '3', '--modes', 'official', 'papr'])
    assert err.endswith("--modes: unknown mode 'papr'; allowed values: official, paper, "
                        'conv_first/from_lowest, conv_first/from_all, '
                        'upsample_first/from_lowest, upsample_first/from_all')
    err = _cli_error(capsys, base + ['--seeds', '1', '--modes', 'official', 'paper'])
    assert err.endswith('--seeds 1: a paired comparison with a standard deviation needs at '
                        'least 2 seeds')
    err = _cli_error(capsys, base + ['--seeds', '2', '--modes', 'paper', '--threads', '0'])
    assert err.endswith('--threads 0: needs at least 1 thread')
    err = _cli_error(capsys, base + ['--seeds', '2', '--modes', 'paper', '--nproc', '2',
                                     '--launch', 'in-process'])
    assert err.endswith('--nproc 2 needs --launch subprocess (torchrun)')
    err = _cli_error(capsys, base + ['--seeds', '3'])
    assert 'no fusion mode given: pass --modes' in err
    err = _cli_error(capsys, [str(tmp_path / 'missing.py'), '--work-dir', str(tmp_path),
                              '--seeds', '2', '--modes', 'paper'])
    assert err.endswith(f'config file not found: {tmp_path / "missing.py"}')


def test_named_modes_are_aliases_of_combinations():
    assert fa.parse_modes(['official', 'conv_first/from_lowest', 'paper']) == [
        fa.Variant('conv_first', 'from_lowest'), fa.Variant('upsample_first', 'from_all')]
    combos = [v.combo for v in fa.parse_modes(['paper'], all_combinations=True)]
    assert combos == [PAPER, OFFICIAL, 'conv_first/from_all', 'upsample_first/from_lowest']
    runs = fa.plan_runs(Path('/r'), fa.parse_modes(['official', 'paper']), range(2))
    assert [(r.variant.slug, r.seed) for r in runs] == [
        ('conv_first-from_lowest', 0), ('upsample_first-from_all', 0),
        ('conv_first-from_lowest', 1), ('upsample_first-from_all', 1)]
    assert runs[3].work_dir == Path('/r/upsample_first-from_all/seed1')
    assert runs[3].cfg_options() == {
        'model.backbone.fuse_order': 'upsample_first', 'model.backbone.new_branch': 'from_all',
        'randomness.seed': 1, 'randomness.deterministic': True,
        'train_dataloader.sampler.seed': 1}
    cuda_runs = fa.plan_runs(Path('/r'), fa.parse_modes(['paper']), range(2), deterministic=False)
    assert cuda_runs[1].cfg_options()['randomness.deterministic'] is False


def _result(variant, seed, miou, losses=(2.0, 1.0)):
    return dict(variant=variant, seed=seed, mIoU=miou, loss_steps=[10, 20], losses=list(losses),
                val_step=20, train_seconds=1.0)


def test_statistics_paired_difference_table_and_plot(tmp_path):
    results = [_result(OFFICIAL, 0, 70.0), _result(PAPER, 0, 71.0),
               _result(OFFICIAL, 1, 72.0), _result(PAPER, 1, 72.5),
               _result(OFFICIAL, 2, 74.0), _result(PAPER, 2, 76.0),
               _result('conv_first/from_all', 1, 73.0, (1.5, 0.5))]
    summary = fa.summarise(results)
    official = summary['variants'][OFFICIAL]
    assert (official['n'], official['mean'], official['std']) == (3, 72.0, 2.0)
    paper = summary['variants'][PAPER]
    assert paper['mean'] == pytest.approx(219.5 / 3, abs=1e-12)
    # deviations -13/6, -4/6, 17/6: sum of squares 474/36, over n - 1 = 2
    assert paper['std'] == pytest.approx(math.sqrt(474 / 72), abs=1e-12)
    diff = summary['paired'][PAPER]
    assert diff['diffs'] == [1.0, 0.5, 2.0] and diff['seeds'] == [0, 1, 2]
    assert diff['mean'] == pytest.approx(3.5 / 3, abs=1e-12)
    assert diff['std'] == pytest.approx(math.sqrt((1 / 36 + 16 / 36 + 25 / 36) / 2), abs=1e-12)
    # a variant with one seed: paired on that seed only, no std
    single = summary['paired']['conv_first/from_all']
    assert (single['n'], single['diffs']) == (1, [1.0]) and math.isnan(single['std'])

    costs = {OFFICIAL: dict(params=3.8794e6, flops=1.096e9, shape=[128, 256])}
    text = fa.format_markdown(summary, costs, notes=['note'])
    assert ('| official (conv_first/from_lowest) | 72.00 ± 2.00 | 3 | 0: 70.00, 1: 72.00, '
            '2: 74.00 | 3.8794 | 1.096 at 128x256 |') in text
    assert ('| paper (upsample_first/from_all) | 73.17 ± 2.57 | 3 | 0: 71.00, 1: 72.50, '
            '2: 76.00 | - | - |') in text
    assert '| paper (upsample_first/from_all) | +1.17 ± 0.76 | 3 | 0: +1.00, 1: +0.50, ' \
           '2: +2.00 |' in text
    assert '| conv_first/from_all | +1.00 | 1 | 1: +1.00 |' in text

    png = tmp_path / 'plot.png'
    fa.plot_ablation(results, png)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size < 200_000


def _fake_log(work_dir: Path, miou: float):
    """A scalars log as mmengine writes it: train lines with 'loss', the val line with mIoU;
    each call is a new run with its own timestamp folder."""
    stamp = f'20260101_00000{len(list(work_dir.glob("2026*")))}'
    log = work_dir / stamp / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    lines = [dict(lr=0.002, loss=2.5, step=1), dict(lr=0.001, loss=1.25, step=2),
             dict(aAcc=80.0, mIoU=miou, mAcc=50.0, step=2)]
    log.write_text('\n'.join(json.dumps(line) for line in lines) + '\n')


def test_resume_trains_only_runs_without_result(tmp_path):
    runs = fa.plan_runs(tmp_path, fa.parse_modes(['official', 'paper']), range(2))
    trained = []

    def train(run):
        trained.append((run.variant.combo, run.seed))
        _fake_log(run.work_dir, 40.0 + run.seed)

    first = fa.run_matrix(runs, train, log=lambda _: None)
    assert len(trained) == 4 and [r['mIoU'] for r in first] == [40.0, 40.0, 41.0, 41.0]
    assert first[0]['loss_steps'] == [1, 2] and first[0]['losses'] == [2.5, 1.25]
    # as if interrupted during the last run: no result.json, a log without validation
    (runs[3].work_dir / fa.RESULT_FILE).unlink()
    log = next(runs[3].work_dir.glob('*/vis_data/scalars.json'))
    log.write_text(log.read_text().splitlines()[0] + '\n')
    trained.clear()
    second = fa.run_matrix(runs, train, log=lambda _: None)
    assert trained == [(PAPER, 1)]
    assert second == first  # the retrained run is read from its new (newest) log
    assert len(list(runs[3].work_dir.glob('*/vis_data/scalars.json'))) == 2


def test_run_log_without_validation_is_an_error(tmp_path):
    log = tmp_path / 's' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps(dict(loss=1.0, step=1)) + '\n')
    with pytest.raises(FileNotFoundError, match='logs no validation mIoU'):
        fa.read_run_log(tmp_path)
    with pytest.raises(FileNotFoundError, match='no json scalars log'):
        fa.read_run_log(tmp_path / 'nothing')


def _fusion_paths(arch: str, shape):
    """(modules, C_i, C_j, pixels_i, pixels_j) of every lower-to-higher fusion path j > i."""
    preset = ARCH_PRESETS[arch]
    pixels = [(shape[0] // 4 >> b) * (shape[1] // 4 >> b) for b in range(4)]
    for streams, modules in zip((2, 3, 4), preset.modules):
        channels = [preset.width * 2**b for b in range(streams)]
        for i in range(streams):
            for j in range(i + 1, streams):
                yield modules, channels[i], channels[j], pixels[i], pixels[j]


def test_paper_order_costs_the_1x1_convs_at_high_resolution():
    # W18-small at 64x128 (streams 16x32 .. 2x4): counted by mmengine through get_flops
    shape = (64, 128)
    variants = fa.parse_modes(['official', 'upsample_first/from_lowest'])
    costs = cli.complexity(QUICKSTART, variants, shape, {})
    official, upsampled = costs[OFFICIAL], costs['upsample_first/from_lowest']
    assert upsampled['params'] == official['params']
    conv = sum(m * ci * cj * (pi - pj) for m, ci, cj, pi, pj in _fusion_paths('w18_small', shape))
    assert conv == fa.upsample_first_extra_macs('w18_small', shape) == 10_202_112
    # mmengine also counts eval BN (2 per element: scale and shift), here at H_i W_i instead of
    # H_j W_j, and bilinear resizes (4 per output element), here of C_j instead of C_i
    # channels; a trace takes both steps of the two-step resize, so each path has two
    norm = sum(m * ci * (pi - pj) for m, ci, cj, pi, pj in _fusion_paths('w18_small', shape))
    resize = sum(m * (cj - ci) * pi for m, ci, cj, pi, pj in _fusion_paths('w18_small', shape))
    assert upsampled['flops'] - official['flops'] == conv + 2 * norm + 2 * 4 * resize
    text = cli.complexity_markdown(QUICKSTART, costs)
    extra = (upsampled['flops'] - official['flops']) / 1e9
    assert f'| upsample_first/from_lowest | 64x128 | {official["params"] / 1e6:.4f} | ' in text
    assert f'| +0.0000 M | {extra:+.3f} G ' in text


def test_tiny_real_run_writes_report_and_resumes(tmp_path):
    data = make_data(tmp_path / 'data', num_train=2, num_val=1)
    work = tmp_path / 'ablation'
    argv = [QUICKSTART, '--seeds', '2', '--modes', 'official', 'paper', '--work-dir',
            str(work), '--launch', 'in-process', '--cfg-options', f'data_root={data}',
            f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}', 'train_dataloader.batch_size=2',
            'model.data_preprocessor.size=(64,128)', 'train_cfg.max_iters=2',
            'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'default_hooks.visualization.draw=False']
    out = cli.main(argv)
    results = out['results']
    assert [(r['variant'], r['seed']) for r in results] == [
        (OFFICIAL, 0), (PAPER, 0), (OFFICIAL, 1), (PAPER, 1)]
    for r in results:
        saved = json.loads((work / fa.Variant(*r['variant'].split('/')).slug /
                            f'seed{r["seed"]}' / fa.RESULT_FILE).read_text())
        assert saved['mIoU'] == r['mIoU'] and 0.0 <= r['mIoU'] <= 100.0
        assert r['val_step'] == 2 and r['loss_steps'] == [1, 2]
        assert all(math.isfinite(v) and v > 0 for v in r['losses'])
    report = (work / 'fusion_ablation.md').read_text()
    official = out['summary']['variants'][OFFICIAL]
    assert f'| official (conv_first/from_lowest) | {official["mean"]:.2f} ± ' \
           f'{official["std"]:.2f} | 2 |' in report
    assert (work / 'fusion_ablation.png').stat().st_size > 1000
    costs = out['complexity']  # at the crop size, 64x128; paper adds the from_all fusion rows
    assert costs[PAPER]['shape'] == costs[OFFICIAL]['shape'] == [64, 128]
    assert costs[PAPER]['params'] > costs[OFFICIAL]['params']
    assert costs[PAPER]['flops'] - costs[OFFICIAL]['flops'] > fa.upsample_first_extra_macs(
        'w18_small', (64, 128))
    assert f'| {costs[PAPER]["params"] / 1e6:.4f} | {costs[PAPER]["flops"] / 1e9:.3f} at ' \
           '64x128 |' in report
    # a rerun trains nothing: the same results, no new log folders
    stamps = sorted(work.glob('*/seed*/*/vis_data'))
    again = cli.main(argv)
    assert again['results'] == results and sorted(work.glob('*/seed*/*/vis_data')) == stamps
