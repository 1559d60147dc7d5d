"""tools/deployment/export_onnx.py --openvino --precision int8 --calib: the int8 IR beside the
f32 one, quantized on a folder of images through the config's test pipeline (FakeQuantize in
the IR, every convolution run int8 when compiled), and the refused combinations."""
import re

import mmcv
import numpy as np
import openvino as ov
import pytest
from mmengine.config import Config

from tests.helpers.tools import load_tool
from tests.tools.test_export_onnx import HRNET_FCN

pytestmark = pytest.mark.torch21
export_tool = load_tool('deployment/export_onnx.py')


def _config_and_images(tmp_path):
    config = tmp_path / 'tiny.py'
    Config(dict(default_scope='mmseg', custom_imports=dict(imports=['mmseg_hrplus']),
                model=HRNET_FCN,
                test_pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='Resize', scale=(64, 48), keep_ratio=False),
                               dict(type='PackSegInputs')])).dump(str(config))
    images = tmp_path / 'calib'
    generator = np.random.RandomState(0)
    for index in range(3):
        mmcv.imwrite(generator.randint(0, 256, (40, 50, 3), dtype=np.uint8),
                     str(images / f'{index}.png'))
    return str(config), str(images)


def test_int8_ir_is_written_and_runs_int8(tmp_path, capsys):
    config, images = _config_and_images(tmp_path)
    out = tmp_path / 'tiny.onnx'
    export_tool.main([config, 'none', str(out), '--shape', '64', '64', '--openvino',
                      '--precision', 'int8', '--calib', images, '--verify', '--ov-threads', '1'])
    printed = capsys.readouterr().out
    int8_xml = tmp_path / 'tiny.int8.xml'
    assert f'wrote {int8_xml} (OpenVINO IR, int8: calibrated on 3 image(s) of {images})' in (
        printed)
    ops = [op.get_type_name() for op in ov.Core().read_model(str(int8_xml)).get_ops()]
    f32_ops = [op.get_type_name()
               for op in ov.Core().read_model(str(tmp_path / 'tiny.xml')).get_ops()]
    assert 'FakeQuantize' not in f32_ops and ops.count('FakeQuantize') >= ops.count('Convolution')
    convs = re.search(r'precision f32, 1 threads, hint LATENCY, int8 convolutions (\d+) of '
                      r'(\d+)', printed).groups()
    assert convs[0] == convs[1] == str(ops.count('Convolution'))
    assert printed.count('max |int8 - torch|') == 2  # the export size and 72x68


@pytest.mark.parametrize('flags, message', [
    (['--precision', 'int8', '--calib', 'x'],
     '--precision int8 writes OpenVINO IR: it needs --openvino'),
    (['--openvino', '--precision', 'int8'],
     "precision='int8' needs calib: a folder of calibration images or a list file"),
    (['--openvino', '--calib', 'x'], "calib is only used by precision='int8'"),
    (['--openvino', '--precision', 'int8', '--calib', 'missing_dir'],
     'calib missing_dir does not exist'),
    (['--openvino', '--precision', 'bf16'],
     "argument --precision: invalid choice: 'bf16' (choose from"),
])
def test_refused_before_building(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        export_tool.main(['never.py', 'none', str(tmp_path / 'm.onnx')] + flags)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
