"""tools/infer.py --precision / --calib: int8 in OpenVINO calibrated on a folder of images,
bf16 through PyTorch autocast (run here with the CPU check told the flags of a bf16 CPU: this
AVX2 machine computes bf16 the same way, slowly), and the refused combinations, each with a
message naming the allowed ones, before anything is loaded. Fixtures: conftest.py."""
import re

import mmcv
import openvino  # noqa: F401  (a CI dependency via requirements/openvino.txt)
import pytest
from mmseg.apis import init_model

from mmseg_hrplus.apis.inference import segment_images
from mmseg_hrplus.utils.cpu_info import cpu_flags, cpu_info, has_native_bf16
from tests.helpers.tools import load_tool

pytestmark = [pytest.mark.torch21, pytest.mark.usefixtures('one_thread')]
infer = load_tool('infer.py')


def _agreement(written, model):
    agreements = []
    for entry in written:
        labels = mmcv.imread(entry['label'], flag='unchanged')
        expected = segment_images(model, entry['image']).pred_sem_seg.data[0].numpy()
        assert labels.shape == expected.shape
        agreements.append(float((labels == expected).mean()))
    return agreements


def test_openvino_int8_calibrated_on_a_folder(tiny_run, tmp_path, capsys):
    config, checkpoint, images = tiny_run
    written = infer.main([str(config), str(checkpoint), str(images), '--out-dir',
                          str(tmp_path / 'out'), '--backend', 'openvino', '--precision', 'int8',
                          '--calib', str(images)])
    printed = capsys.readouterr().out
    assert ('backend openvino: precision int8 (compiled hint f32), threads 1, hint LATENCY'
            in printed)
    assert f"isa {cpu_info()['isa']}" in printed
    convs = re.search(r'int8_convolutions (\d+) of (\d+)', printed).groups()
    assert convs[0] == convs[1] and int(convs[0]) > 40, printed  # every conv runs int8
    # the tiny random model's labels (classifier std 10: wide margins) stay close to f32's;
    # measured 0.95 and 0.97 on the two images
    model = init_model(str(config), str(checkpoint), device='cpu')
    agreement = _agreement(written, model)
    print(f'int8 vs f32 label agreement {agreement}')
    assert min(agreement) >= 0.8


def test_pytorch_bf16_on_a_cpu_with_bf16(tiny_run, tmp_path, capsys, monkeypatch):
    import mmseg_hrplus.deploy.bf16 as bf16
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: {'avx512f', 'avx512_bf16'})
    config, checkpoint, images = tiny_run
    written = infer.main([str(config), str(checkpoint), str(images), '--out-dir',
                          str(tmp_path / 'out'), '--precision', 'bf16'])
    assert 'backend pytorch: precision bf16, isa ' in capsys.readouterr().out
    # bf16 rounds ~0.05 of the logits' scale (tests/deploy/test_bf16.py): measured 0.99, 0.997
    model = init_model(str(config), str(checkpoint), device='cpu')
    agreement = _agreement(written, model)
    print(f'bf16 vs f32 label agreement {agreement}')
    assert min(agreement) >= 0.9


@pytest.mark.parametrize('flags, message', [
    (['--backend', 'onnxruntime', '--precision', 'int8', '--calib', 'x'],
     r"precision='int8' does not exist for backend='onnxruntime'; allowed: pytorch: f32, bf16; "
     r'onnxruntime: f32; openvino: f32, bf16, int8'),
    (['--precision', 'int8', '--calib', 'x'],
     r"precision='int8' does not exist for backend='pytorch'"),
    (['--backend', 'openvino', '--precision', 'int8'],
     r"precision='int8' needs calib: a folder of calibration images or a list file"),
    (['--backend', 'openvino', '--calib', 'x'],
     r"calib is only used by precision='int8'; got precision='f32'"),
])
def test_refused_combinations(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        infer.main(['never.py', 'never.pth', str(tmp_path)] + flags)
    assert info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.skipif(has_native_bf16(cpu_flags()), reason='this CPU has native bf16')
@pytest.mark.parametrize('backend', ['pytorch', 'openvino'])
def test_bf16_is_refused_on_this_cpu(tmp_path, capsys, backend):
    with pytest.raises(SystemExit):
        infer.main(['never.py', 'never.pth', str(tmp_path), '--backend', backend,
                    '--precision', 'bf16'])
    assert "precision='bf16' needs a CPU with native bf16" in capsys.readouterr().err


def test_calib_folder_without_images_is_refused(tiny_run, tmp_path):
    config, checkpoint, images = tiny_run
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=r'calib .*empty holds no image'):
        infer.run_inference(str(config), str(checkpoint), str(images), str(tmp_path / 'o'),
                            backend='openvino', precision='int8', calib=str(tmp_path / 'empty'))
