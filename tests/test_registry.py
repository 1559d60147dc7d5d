"""The registry contract: `type='mmseg_hrplus.<Name>'` builds from mmseg- and mmdet-scoped
configs, with or without custom_imports, and none of our names shadows mmseg's or mmdet's."""
import json
import subprocess
import sys
import textwrap

import pytest

from mmseg_hrplus.registry import MODELS

PUBLIC_NAMES = ('HRNet', 'DilatedResNet', 'BiSeNetV2', 'HRNetV2pNeck', 'DeepLabV2ASPPHead',
                'ASPPHead', 'BGAHead', 'BoosterHead')

# Runs in a fresh interpreter so that "without custom_imports" really starts with
# mmseg_hrplus not imported.
BUILD_SCRIPT = textwrap.dedent('''
    import json, sys, tempfile
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    scope, with_imports = sys.argv[1], sys.argv[2] == '1'
    lines = [f"default_scope = {scope!r}",
             "model = dict(type='mmseg_hrplus.HRNet', arch='w18_small')"]
    if with_imports:
        lines.append("custom_imports = dict(imports=['mmseg_hrplus'], allow_failed_imports=False)")
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write('\\n'.join(lines))
    imported_before = 'mmseg_hrplus' in sys.modules
    cfg = Config.fromfile(f.name)
    imported_by_config = 'mmseg_hrplus' in sys.modules
    init_default_scope(cfg.default_scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(cfg.model)
    names = {n: registry.get(f'mmseg_hrplus.{n}').__module__ for n in json.loads(sys.argv[3])}
    print(json.dumps(dict(cls=type(model).__module__ + '.' + type(model).__name__,
                          imported_before=imported_before,
                          imported_by_config=imported_by_config, names=names)))
''')


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
@pytest.mark.parametrize('with_imports', [True, False])
def test_prefixed_type_builds_in_every_scope(scope, with_imports):
    out = subprocess.run(
        [sys.executable, '-c', BUILD_SCRIPT, scope, str(int(with_imports)),
         json.dumps(PUBLIC_NAMES)],
        capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['cls'] == 'mmseg_hrplus.models.backbones.hrnet.HRNet'
    assert result['imported_before'] is False
    assert result['imported_by_config'] is with_imports
    for name, module in result['names'].items():
        assert module.startswith('mmseg_hrplus.models.'), (name, module)


def test_public_names_registered_under_our_scope():
    assert MODELS.scope == 'mmseg_hrplus'
    for name in PUBLIC_NAMES:
        cls = MODELS.get(name)
        assert cls is not None, name
        assert cls.__module__.startswith('mmseg_hrplus.models.'), (name, cls.__module__)


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_our_names_do_not_shadow_the_references(scope):
    from mmengine.registry import DefaultScope
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        for name in PUBLIC_NAMES:
            theirs = registry.get(name)
            if theirs is not None:  # e.g. mmseg's own HRNet, ASPPHead, BiSeNetV2
                assert not theirs.__module__.startswith('mmseg_hrplus'), (scope, name)
        assert registry.get('mmseg_hrplus.HRNet') is MODELS.get('HRNet')
