"""Item 5 of issue 7: loading a checkpoint never runs pickled code, on every load path our
tools use. The crafted file's __reduce__ calls os.system('touch <marker>'): every path must
refuse it with UnsafeCheckpointError (a pickle.UnpicklingError) and the marker never appears.

Paths: tools/train.py --resume (CLI process and in-process), load_from (tools/train.py and
tools/test.py), init_cfg=dict(type='Pretrained'), the converters (mmengine's CheckpointLoader as
they call it, and every tools/model_converters/*.py and mmseg_hrplus.converters.* CLI), and
inference (mmseg.apis.init_model).
"""
import importlib
import importlib.util
import os
import pickle
import pkgutil

import pytest
import torch
from hrplus_tiny_run import REPO, make_data, output, run_tool, write_config
from mmengine.config import Config
from mmengine.runner import CheckpointLoader

import mmseg_hrplus.converters
from mmseg_hrplus.checkpoint import UnsafeCheckpointError


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('security')
    marker = root / 'marker'
    evil = root / 'evil.pth'
    # shaped like a real checkpoint, with the payload where mmengine keeps its meta
    torch.save({'meta': RunsCode(marker), 'state_dict': {}, 'message_hub': {}}, evil)
    config = write_config(root / 'tiny.py', make_data(root / 'data'), max_iters=2,
                          ckpt_interval=2, val_interval=2, dropout=-1)
    return dict(root=root, marker=marker, evil=evil, config=config)


def refused(setup, info):
    message = str(info.value)
    assert message.startswith(f'refused checkpoint {setup["evil"]}: the file asks to run code')
    assert 'unsupported global posix.system' in message
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not setup['marker'].exists()


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'hrplus_tool_{name}',
                                                  REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_args(setup, name, *extra):
    work_dir = setup['root'] / f'work_{name}'
    return [str(setup['config']), *extra, '--work-dir', str(work_dir), '--cfg-options',
            f'experiment_name=security_{name}_{os.getpid()}',
            'randomness.deterministic=False']  # keep torch's global mode of this process


def test_resume_cli_refuses_and_says_why(setup):
    proc = run_tool(['train.py', str(setup['config']), '--resume', str(setup['evil']),
                     '--work-dir', str(setup['root'] / 'work_cli')])
    assert proc.returncode != 0, output(proc)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith('mmseg_hrplus.checkpoint.UnsafeCheckpointError: refused '
                                f'checkpoint {setup["evil"]}: the file asks to run code'), last_line
    assert not setup['marker'].exists()


def test_resume_in_process(setup):
    with pytest.raises(UnsafeCheckpointError) as info:
        load_tool('train').main(tool_args(setup, 'resume', '--resume', str(setup['evil'])))
    refused(setup, info)


def test_load_from_in_train(setup):
    args = tool_args(setup, 'load_from') + [f'load_from={setup["evil"]}']
    with pytest.raises(UnsafeCheckpointError) as info:
        load_tool('train').main(args)
    refused(setup, info)


def test_test_tool_checkpoint(setup):
    args = [str(setup['config']), str(setup['evil'])] + tool_args(setup, 'test')[1:]
    with pytest.raises(UnsafeCheckpointError) as info:
        load_tool('test').main(args)
    refused(setup, info)


def test_init_cfg_pretrained(setup):
    from mmseg.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(setup['config']))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(setup['evil']))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    with pytest.raises(UnsafeCheckpointError) as info:
        model.init_weights()
    refused(setup, info)


def test_converter_library_path(setup):
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(str(setup['evil']), map_location='cpu')
    refused(setup, info)


def converter_clis():
    clis = [('tools/model_converters/' + path.name, lambda path=path: load_tool(
        f'model_converters/{path.stem}'))
        for path in sorted((REPO / 'tools' / 'model_converters').glob('*.py'))]
    for info in pkgutil.iter_modules(mmseg_hrplus.converters.__path__):
        name = f'mmseg_hrplus.converters.{info.name}'
        if hasattr(importlib.import_module(name), 'main'):
            clis.append((name, lambda name=name: importlib.import_module(name)))
    return clis


CONVERTERS = converter_clis()


def test_there_are_converter_clis_to_check():
    assert len(CONVERTERS) >= 2, [name for name, _ in CONVERTERS]


@pytest.mark.parametrize('load', [load for _, load in CONVERTERS],
                         ids=[name for name, _ in CONVERTERS])
def test_converter_cli(setup, load, tmp_path):
    """Every converter's ``main([SRC, DST])`` refuses the file and writes nothing."""
    dst = tmp_path / 'converted.pth'
    with pytest.raises(pickle.UnpicklingError):  # ours, or torch's own (weights_only=True)
        load().main([str(setup['evil']), str(dst)])
    assert not setup['marker'].exists()
    assert not dst.exists()


def test_inference_init_model(setup):
    from mmseg.apis import init_model
    with pytest.raises(UnsafeCheckpointError) as info:
        init_model(str(setup['config']), str(setup['evil']), device='cpu')
    refused(setup, info)
