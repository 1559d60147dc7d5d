"""tools/analysis_tools/deploy_accuracy.py on a tiny HRNet + FCN and two synthetic
Cityscapes-layout validation images (64x128): one row per requested path, f32 PyTorch exactly
its own reference, the runtimes' agreement, mIoU equal to tools/test.py's, the markdown section
replaced by key, bad input refused at setup with the argument named."""
import json

import numpy as np
import onnxruntime  # noqa: F401  (CI dependencies via requirements/onnx.txt and openvino.txt)
import openvino  # noqa: F401
import pytest
import torch

from mmseg_hrplus.datasets.synthetic_cityscapes import data_root_options, make_synthetic_cityscapes
from mmseg_hrplus.utils.cpu_info import cpu_flags, has_native_bf16
from tests.helpers.tiny_models import tiny_hrnet_extra
from tests.helpers.tiny_run import QUICKSTART
from tests.helpers.tools import load_tool, run_tool_main

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
tool = load_tool('analysis_tools/deploy_accuracy.py')

F32_PATHS = ['pytorch-f32', 'optimized-f32', 'onnxruntime-f32', 'openvino-f32']
# The f32 runtimes compute the same function in another order of float operations: their
# logits differ from PyTorch's by ~1e-6 of the largest (bounded by 1e-4 in
# tests/deploy/test_openvino.py). A pixel's label can only change where its two best logits
# are that close, which the classifier weights below (std 10) make rare: 0.999 allows 16 of
# the 16384 pixels of the two images, far above what rounding can flip.
F32_AGREEMENT = 0.999
F32_LOGIT_BOUND = 1e-4
REDUCED_PATHS = ['openvino-int8', 'pytorch-bf16', 'openvino-bf16']

_CONFIG = '''
_base_ = [{base!r}]
model = dict(backbone=dict(arch=None, extra={extra!r}),
             decode_head=dict(in_channels=[4, 8, 16, 32], channels=8))
'''


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """(config, checkpoint, data folder): the quickstart config narrowed to a tiny HRNet, its
    random weights with BN statistics of real images and a sharp classifier, and 2 train + 2
    val synthetic images of 64x128."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_hrplus.benchmark.weights import calibrate_bn
    root = tmp_path_factory.mktemp('deploy_accuracy')
    data = root / 'data'
    make_synthetic_cityscapes(data, num_train=2, num_val=2, size=(64, 128))
    config = root / 'tiny.py'
    config.write_text(_CONFIG.format(base=str(QUICKSTART), extra=tiny_hrnet_extra()))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    calibrate_bn(model, (2, 3, 64, 128))
    torch.nn.init.normal_(model.decode_head.conv_seg.weight, std=10.0)
    checkpoint = root / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=[f'c{i}' for i in range(19)]))),
               checkpoint)
    return config, checkpoint, data


def _run(tiny_model, tmp_path, *extra):
    config, checkpoint, data = tiny_model
    return run_tool_main(tool, [str(config), str(checkpoint), '--data', str(data), '--shape',
                                '64', '64', '--repeats', '1', '--threads', '1', *extra])


@pytest.fixture(scope='module')
def f32_report(tiny_model, tmp_path_factory):
    """One run of every path (bf16 emulated where the CPU has no native bf16; int8 calibrated
    on the first training image) writing a page that already holds a stale section of the
    same config and another config's section."""
    config = tiny_model[0]
    folder = tmp_path_factory.mktemp('report')
    page = folder / 'page.md'
    from mmseg_hrplus.benchmark.deploy_report import write_report_section
    page.write_text('# Title\n\nintro\n')
    write_report_section(page, 'other.py', 'KEEP')
    write_report_section(page, str(config), 'STALE')
    report = _run(tiny_model, folder, '--paths', *F32_PATHS, *REDUCED_PATHS, '--emulate-bf16',
                  '--calib-count', '1', '--fps-shapes', '64x96', '--markdown', str(page),
                  '--json', str(folder / 'report.json'))
    return report, page, folder / 'report.json'


def test_one_row_per_path_and_f32_pytorch_is_its_own_reference(f32_report):
    report, _, _ = f32_report
    rows = report['rows']
    assert [row['path'] for row in rows] == F32_PATHS + REDUCED_PATHS
    reference = rows[0]
    assert reference['precision'] == 'f32'
    assert reference['mIoU_diff'] == 0.0
    assert reference['agreement'] == 1.0
    assert reference['max_rel_logit_diff'] == 0.0
    assert reference['speed']['speedup'] == (1.0, 1.0)
    assert report['images'] == 2
    assert 0.0 < reference['mIoU'] < 100.0


def test_f32_paths_agree_with_pytorch(f32_report):
    rows = {row['path']: row for row in f32_report[0]['rows']}
    for name in F32_PATHS[1:]:
        assert rows[name]['agreement'] >= F32_AGREEMENT, name
        assert 0.0 < rows[name]['max_rel_logit_diff'] <= F32_LOGIT_BOUND, name
        assert rows[name]['precision'] == 'f32', name
    assert rows['openvino-f32']['properties']['threads'] == 1
    assert rows['onnxruntime-f32']['properties']['threads'] == 1


def test_speed_and_fps_at_every_shape(f32_report):
    for row in f32_report[0]['rows'][:len(F32_PATHS)]:
        speed, fps = row['speed'], row['fps_speed']['64x96']
        assert 0.0 < speed['min_s'] <= speed['median_s']
        assert fps['fps'] == pytest.approx(1.0 / fps['median_s'])


def test_bf16_row_says_why_it_did_not_run(f32_report):
    row = f32_report[0]['rows'][-1]
    if has_native_bf16(cpu_flags()):
        assert row['precision'] == 'bf16'
    else:
        assert row == dict(path='openvino-bf16', not_run=row['not_run'])
        assert "precision='bf16' needs a CPU with native bf16" in row['not_run']


def test_emulated_bf16_is_scored_but_not_timed(f32_report):
    row = f32_report[0]['rows'][len(F32_PATHS) + 1]
    assert row['path'] == 'pytorch-bf16'
    if has_native_bf16(cpu_flags()):
        assert row['precision'] == 'bf16' and row['speed'] is not None
    else:
        assert row['precision'] == 'bf16 (emulated)' and row['emulated']
        assert row['speed'] is None and row['fps_speed'] == {'64x96': None}
    # bf16 keeps 8 significant bits (2**-9 relative per rounding); through the tiny network the
    # logits drift by a few 1e-2 of their scale (4.7e-2 measured), which flips a few percent of
    # the labels of a random network (3.2% measured), not more
    assert 0.0 < row['max_rel_logit_diff'] <= 0.1
    assert row['agreement'] >= 0.9


def test_int8_runs_calibrated_on_the_training_split(f32_report):
    report = f32_report[0]
    row = report['rows'][len(F32_PATHS)]
    assert row['path'] == 'openvino-int8' and row['precision'] == 'int8 + f32'
    assert row['properties']['calibration_images'] == 1
    assert report['calibration'] == '1 images (training split)'
    # random weights and one calibration image: only that it ran and differs from f32
    assert 0.0 < row['max_rel_logit_diff'] and 0.0 < row['agreement'] <= 1.0
    assert row['speed']['min_s'] > 0.0


def test_markdown_section_replaced_by_key_and_json_written(f32_report, tiny_model):
    report, page, json_path = f32_report
    text = page.read_text()
    key = str(tiny_model[0])
    assert text.startswith('# Title\n\nintro\n')
    assert 'STALE' not in text and text.count(f'<!-- deploy_accuracy: {key} -->') == 1
    assert '<!-- deploy_accuracy: other.py -->\nKEEP\n<!-- end deploy_accuracy: other.py -->' \
        in text
    assert report['command'] in text and report['commit'] in text
    table = [line for line in text.splitlines() if line.startswith('| ')]
    assert table[1].startswith('| pytorch-f32 | f32 | ') and '| +0.00 | 1.000000 |' in table[1]
    assert any(line.startswith('| openvino-bf16 | ') for line in table)
    assert json.loads(json_path.read_text())['rows'][0]['mIoU'] == report['rows'][0]['mIoU']


def test_miou_equals_tools_test(f32_report, tiny_model, tmp_path):
    config, checkpoint, data = tiny_model
    work_dir = tmp_path / 'test_run'
    options = [f'{k}={v}' for k, v in data_root_options(data).items()]
    load_tool('test.py').main([str(config), str(checkpoint), '--work-dir', str(work_dir),
                               '--cfg-options', *options])
    logged = load_tool('demo.py').latest_test_metrics(work_dir)
    assert f32_report[0]['rows'][0]['mIoU'] == pytest.approx(logged['mIoU'], abs=1e-6)
    assert f32_report[0]['rows'][0]['metrics']['aAcc'] == pytest.approx(logged['aAcc'],
                                                                        abs=1e-6)


@pytest.mark.parametrize('args, message', [
    (['--paths', 'pytorch-f32', 'tensorrt'],
     "--paths='tensorrt' is not supported; allowed values: 'pytorch-f32', 'optimized-f32'"),
    (['--paths', 'openvino-f32'], "--paths must start with 'pytorch-f32'"),
    (['--repeats', '0'], '--repeats must be an int >= 1, got 0'),
    (['--shape', '16', '64'], '--shape must be 2 ints >= 32 (H, W), got [16, 64]'),
])
def test_bad_arguments_are_refused_at_setup(tiny_model, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        _run(tiny_model, tmp_path, *args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_folder_is_refused(tiny_model, tmp_path, capsys):
    config, checkpoint, _ = tiny_model
    with pytest.raises(SystemExit):
        run_tool_main(tool, [str(config), str(checkpoint), '--data', str(tmp_path / 'none')])
    assert f"--data='{tmp_path / 'none'}' is not an existing folder" in capsys.readouterr().err


@pytest.mark.parametrize('calib, message', [
    ('empty', 'int8 needs calibration images; none found in --calib'),
    ('val', '--calib: 2 calibration images are evaluation images'),
])
def test_int8_without_proper_calibration_images_is_refused(tiny_model, tmp_path, capsys,
                                                            calib, message):
    folder = tmp_path / 'empty'
    folder.mkdir()
    if calib == 'val':
        folder = tiny_model[2] / 'leftImg8bit' / 'val'
    with pytest.raises(SystemExit):
        _run(tiny_model, tmp_path, '--paths', 'pytorch-f32', 'openvino-int8', '--calib',
             str(folder))
    assert message in capsys.readouterr().err


def test_default_calibration_is_the_training_split(tiny_model):
    from mmseg_hrplus.benchmark.deploy_data import calibration_images, point_at_data
    from mmseg_hrplus.engine.runner import load_config
    config, _, data = tiny_model
    cfg = point_at_data(load_config(str(config)), data)
    chosen = calibration_images(cfg, None, 1, [])
    assert len(chosen) == 1 and '/leftImg8bit/train/' in chosen[0]
    assert np.all(np.isfinite([len(chosen)]))
