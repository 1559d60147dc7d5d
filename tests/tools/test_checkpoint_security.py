"""Item 5 of issue 7: loading a checkpoint never runs pickled code, on every load path our
tools use. The crafted file's __reduce__ calls os.system('touch <marker>'): every path must
refuse it with UnsafeCheckpointError (a pickle.UnpicklingError) and the marker never appears.

Paths: tools/train.py --resume (CLI process and in-process), load_from (tools/train.py and
tools/test.py), init_cfg=dict(type='Pretrained'), the converters (mmengine's CheckpointLoader as
they call it, and tools/model_converters/convert.py for every registered source), and
inference (mmseg.apis.init_model).
"""
import importlib.util
import os
import pickle

import pytest
import torch
from tests.helpers.crafted_pickles import RunsCode
from tests.helpers.tiny_run import REPO, make_data, output, run_tool, write_config
from mmengine.config import Config
from mmengine.runner import CheckpointLoader

from mmseg_hrplus.checkpoint import UnsafeCheckpointError

pytestmark = pytest.mark.torch21  # also run on the torch 2.1 stack


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
    assert message.startswith(f'refused checkpoint {setup["evil"]}: the file asks for '
                              '`posix.system`, which is outside the allow-list; nothing was '
                              'executed'), message
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
                                f'checkpoint {setup["evil"]}: the file asks for `posix.system`'
                                ), last_line
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


def converter_sources():
    from mmseg_hrplus.converters import source_names
    return source_names()


def test_there_are_converter_sources_to_check():
    assert {'mmseg-bisenetv2', 'torchvision-resnet'} <= set(converter_sources())


@pytest.mark.parametrize('source', converter_sources())
def test_converter_cli(setup, source, tmp_path):
    """``tools/model_converters/convert.py SOURCE SRC DST`` refuses the file for every source
    and writes nothing."""
    dst = tmp_path / 'converted.pth'
    with pytest.raises(UnsafeCheckpointError):
        load_tool('model_converters/convert').main([source, str(setup['evil']), str(dst)])
    assert not setup['marker'].exists()
    assert not dst.exists()


def test_inference_init_model(setup):
    from mmseg.apis import init_model
    with pytest.raises(UnsafeCheckpointError) as info:
        init_model(str(setup['config']), str(setup['evil']), device='cpu')
    refused(setup, info)


@pytest.fixture(scope='module')
def served_evil(setup):
    """The crafted file served from 127.0.0.1, with a fresh torch hub cache."""
    from tests.helpers.served_files import serve_directory
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(setup['root'] / 'hub'))
    with serve_directory(setup['root']) as base:
        yield f'{base}/{setup["evil"].name}'
    torch.hub.set_dir(before)


def refused_url(setup, url, info):
    message = str(info.value)
    assert message.startswith(f'refused checkpoint {url} (downloaded): '), message
    assert '`posix.system`' in message and 'nothing was executed' in message
    assert message.endswith('nothing was cached'), message
    assert not setup['marker'].exists()


def test_inference_init_model_by_url(setup, served_evil):
    from mmseg.apis import init_model
    with pytest.raises(UnsafeCheckpointError) as info:
        init_model(str(setup['config']), served_evil, device='cpu')
    refused_url(setup, served_evil, info)


def test_detector_init_detector_by_url(setup, served_evil):
    from mmdet.apis import init_detector
    config = REPO / 'configs' / 'mmdet' / 'faster-rcnn_hrnetv2p-w18_1x_coco.py'
    with pytest.raises(UnsafeCheckpointError) as info:
        init_detector(str(config), served_evil, device='cpu')
    refused_url(setup, served_evil, info)


# The archive tricks of issue 20, through the same entry points: a TorchScript archive that
# hides from Python's zipfile (a malformed extra field), and a tar whose `storages` member is a
# hard link to a file outside (torch's legacy loader would extract it and change that file).

@pytest.fixture(scope='module')
def archives(setup):
    from tests.helpers.attack_corpus import Context, tar_hardlink, torchscript_bad_extra
    victim = setup['root'] / 'victim' / 'secret.cfg'
    victim.parent.mkdir()
    victim.write_text('token = 1\n')
    os.chmod(victim, 0o600)
    context = Context(victim=victim, marker=setup['marker'])
    files = {'torchscript': setup['root'] / 'scripted.pth', 'tar': setup['root'] / 'linked.pth'}
    files['torchscript'].write_bytes(torchscript_bad_extra(context))
    files['tar'].write_bytes(tar_hardlink(context))
    return dict(files, victim=victim, victim_stat=os.stat(victim))


ARCHIVE_REASONS = {'torchscript': 'malformed zip extra field', 'tar': 'it is a tar archive'}


def archive_refused(archives, kind, info, name=None):
    message = str(info.value)
    name = name or str(archives[kind])
    assert message.startswith((f'refused checkpoint {name}', f'cannot read checkpoint {name}'))
    assert ARCHIVE_REASONS[kind] in message and '\n' not in message, message
    after = os.stat(archives['victim'])
    before = archives['victim_stat']
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
        before.st_mode, before.st_uid, before.st_mtime_ns)


@pytest.mark.parametrize('kind', list(ARCHIVE_REASONS))
def test_archive_tricks_through_resume(setup, archives, kind):
    from mmseg_hrplus.checkpoint import CheckpointError
    with pytest.raises(CheckpointError) as info:
        load_tool('train').main(tool_args(setup, f'resume_{kind}', '--resume',
                                          str(archives[kind])))
    archive_refused(archives, kind, info)


@pytest.mark.parametrize('kind', list(ARCHIVE_REASONS))
def test_archive_tricks_through_test_tool(setup, archives, kind):
    from mmseg_hrplus.checkpoint import CheckpointError
    args = [str(setup['config']), str(archives[kind])] + tool_args(setup, f'test_{kind}')[1:]
    with pytest.raises(CheckpointError) as info:
        load_tool('test').main(args)
    archive_refused(archives, kind, info)


@pytest.mark.parametrize('kind', list(ARCHIVE_REASONS))
def test_archive_tricks_through_init_model_and_inferencer(setup, archives, kind):
    from mmseg.apis import MMSegInferencer, init_model

    from mmseg_hrplus.checkpoint import CheckpointError
    with pytest.raises(CheckpointError) as info:
        init_model(str(setup['config']), str(archives[kind]), device='cpu')
    archive_refused(archives, kind, info)
    with pytest.raises(CheckpointError) as info:
        MMSegInferencer(str(setup['config']), weights=str(archives[kind]), device='cpu')
    archive_refused(archives, kind, info)


@pytest.mark.parametrize('kind', list(ARCHIVE_REASONS))
def test_archive_tricks_through_converter(archives, kind, tmp_path):
    from mmseg_hrplus.checkpoint import CheckpointError
    dst = tmp_path / 'converted.pth'
    with pytest.raises(CheckpointError) as info:
        load_tool('model_converters/convert').main(['torchvision-resnet', str(archives[kind]),
                                                     str(dst)])
    archive_refused(archives, kind, info)
    assert not dst.exists()


def test_converter_command_line_says_why_in_one_line(archives, tmp_path):
    """Run as a command, the converter ends with the reader's one line, not a traceback."""
    dst = tmp_path / 'converted.pth'
    proc = run_tool(['model_converters/convert.py', 'hrnet-seg', str(archives['torchscript']),
                     str(dst)])
    assert proc.returncode == 1, output(proc)
    assert proc.stderr.strip().splitlines() == [
        f'CheckpointError: cannot read checkpoint {archives["torchscript"]} '
        f'({archives["torchscript"].stat().st_size} bytes): truncated, corrupted or not a '
        'PyTorch checkpoint (a malformed zip extra field)'], output(proc)
    assert not dst.exists()


@pytest.mark.parametrize('kind', list(ARCHIVE_REASONS))
def test_archive_tricks_by_url_are_not_cached(setup, archives, kind):
    from mmdet.apis import init_detector
    from tests.helpers.served_files import serve_directory

    from mmseg_hrplus.checkpoint import CheckpointError, cached_path_for
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(setup['root'] / f'hub_{kind}'))
    try:
        with serve_directory(setup['root']) as base:
            url = f'{base}/{archives[kind].name}'
            config = REPO / 'configs' / 'mmdet' / 'faster-rcnn_hrnetv2p-w18_1x_coco.py'
            for _ in range(2):  # the second time must not find it in the cache
                with pytest.raises(CheckpointError) as info:
                    init_detector(str(config), url, device='cpu')
                archive_refused(archives, kind, info, name=url)
                assert not os.path.exists(cached_path_for(url))
    finally:
        torch.hub.set_dir(before)
