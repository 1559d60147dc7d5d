"""tools/analysis_tools/analyze_logs.py on a synthetic mmengine scalars.json."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tools import load_tool

analyze_logs = load_tool('analysis_tools/analyze_logs.py')


@pytest.fixture
def scalars(tmp_path) -> Path:
    """12 training lines (every 10 iterations) and 3 validation lines, as LocalVisBackend
    writes them, with an empty line in between."""
    lines = []
    for it in range(10, 130, 10):
        lines.append(dict(lr=0.01, data_time=0.01, loss=2.0 / it, **{'decode.loss_ce': 1.0 / it},
                          time=0.2, iter=it, memory=100, step=it))
        if it % 40 == 0:
            lines.append(dict(aAcc=80.0 + it / 10, mIoU=40.0 + it / 10, mAcc=50.0,
                              data_time=0.01, time=0.1, step=it))
    path = tmp_path / 'scalars.json'
    path.write_text('\n'.join(json.dumps(line) for line in lines[:5]) + '\n\n'
                    + '\n'.join(json.dumps(line) for line in lines[5:]) + '\n')
    return path


def test_series_and_png(scalars, tmp_path):
    out = tmp_path / 'plots' / 'curves.png'
    series = analyze_logs.main([str(scalars), '--keys', 'loss', 'mIoU', 'decode.loss_ce',
                                '--out', str(out)])
    assert series['loss'][0] == list(range(10, 130, 10))
    assert series['loss'][1] == pytest.approx([2.0 / it for it in range(10, 130, 10)])
    assert series['decode.loss_ce'][0] == list(range(10, 130, 10))
    assert series['mIoU'] == ([40, 80, 120], pytest.approx([44.0, 48.0, 52.0]))
    import matplotlib.image
    img = matplotlib.image.imread(str(out))
    # 2 columns x 2 rows of 6x4 inch subplots at 100 dpi
    assert img.shape[:2] == (800, 1200)
    assert np.ptp(img[..., :3]) > 0  # something was drawn


def test_missing_keys(scalars, capsys):
    records = analyze_logs.load_scalars(scalars)
    series = analyze_logs.extract_series(records, ['loss', 'mIou'])
    assert list(series) == ['loss'] and len(series['loss'][0]) == 12
    assert "key 'mIou' is in no record, not plotted" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"none of the keys \['mIou'\] is in any record; keys in "
                                         r"the file: \['aAcc', 'data_time', 'decode.loss_ce'"):
        analyze_logs.extract_series(records, ['mIou'])


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / 'scalars.json'
    path.write_text('{"loss": 1, "iter": 1}\n{"loss": \n')
    with pytest.raises(ValueError, match=r'scalars.json:2 is not JSON'):
        analyze_logs.load_scalars(path)
