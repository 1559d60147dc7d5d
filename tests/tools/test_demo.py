"""`make demo` end to end: the synthetic data, tools/train.py, tools/test.py, overlays.

This is one of the suite's two segmentation end-to-end runs; it uses the demo's real settings
(300 iterations), so the mIoU floor is what such runs reached on this project's CPUs (75-79)
minus a margin for the spread of CPU float reductions.
"""

import pytest

from tests.helpers.tools import load_tool

pytestmark = pytest.mark.torch21

DEMO_MIOU_FLOOR = 60.0


@pytest.fixture(scope='module')
def demo_result(tmp_path_factory):
    run_demo = load_tool('demo.py').run_demo
    root = tmp_path_factory.mktemp('demo')
    return run_demo(root / 'work_dir', data_root=root / 'data')


def test_demo_learns(demo_result):
    assert demo_result['mIoU'] >= DEMO_MIOU_FLOOR


def test_demo_writes_overlays(demo_result):
    assert len(demo_result['overlays']) == 10  # one per validation image


def test_demo_names_the_folder_the_overlays_are_in(demo_result):
    """mmengine nests the overlays under <run>/vis_data/vis_image/: the demo prints that folder,
    not the --show-dir it passed."""
    import os
    folder = load_tool('demo.py').overlay_folder(demo_result['overlays'], 'unused')
    assert folder.endswith(os.path.join('vis_data', 'vis_image')), folder
    assert sorted(os.path.join(folder, name) for name in os.listdir(folder)) == \
        sorted(demo_result['overlays'])
