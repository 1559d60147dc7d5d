"""Install mmseg_hrplus, an OpenMMLab plugin (MMSeg 1.x / MMDet 3.x).

The heavy dependencies (torch, mmcv with compiled ops) need an ordered install: see
``tools/install.sh`` (run by ``make install``) and the README's GPU section.

Like mmsegmentation and mmdet, the package carries its configs, tools and ``model-index.yml``
in ``mmseg_hrplus/.mim/``, where ``mim search`` and mmseg's tools look for them
(docs/configs_from_the_package.md). A wheel (or a non-editable install) gets copies made in the
build folder; an editable install gets relative symlinks into the checkout, so that edited
configs show at once. The checkout's ``mmseg_hrplus/.mim`` is never tracked (.gitignore).
"""
import os
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = Path(__file__).parent
PACKAGE = 'mmseg_hrplus'
#: The checkout's files that the package carries in ``mmseg_hrplus/.mim/``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc')


def read_version() -> str:
    text = (HERE / 'mmseg_hrplus' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(name: str) -> list:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def link_mim_files() -> None:
    """Editable installs: ``mmseg_hrplus/.mim/<name>`` become relative symlinks to the
    checkout's ``<name>`` (what was there before is replaced)."""
    mim = HERE / PACKAGE / '.mim'
    mim.mkdir(exist_ok=True)
    for name in MIM_FILES:
        link, target = mim / name, os.path.relpath(HERE / name, mim)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        _remove(link)
        link.symlink_to(target)


def copy_mim_files(package_dir: Path) -> None:
    """Wheels: copies of the checkout's files in ``<package_dir>/.mim`` (a build folder)."""
    mim = package_dir / '.mim'
    _remove(mim)
    mim.mkdir(parents=True)
    for name in MIM_FILES:
        source = HERE / name
        if source.is_dir():
            shutil.copytree(source, mim / name, ignore=MIM_IGNORE)
        else:
            shutil.copy2(source, mim / name)


class BuildPyWithMimFiles(build_py):
    """build_py, then the ``.mim`` files: copied into the build folder, or linked in the
    checkout when setuptools builds an editable install (``pip install -e .``)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            link_mim_files()
        else:
            copy_mim_files(Path(self.build_lib) / PACKAGE)


class DevelopWithMimFiles(develop):
    """The legacy ``setup.py develop`` (pip's editable fallback): links the ``.mim`` files."""

    def run(self):
        link_mim_files()
        super().run()


setup(
    name='mmseg_hrplus',
    version=read_version(),
    description='HRNet, DeepLabv2 and BiSeNetV2 components for MMSegmentation and MMDetection',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE'],
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    keywords=[
        'semantic segmentation', 'object detection', 'HRNet', 'DeepLab', 'BiSeNetV2',
        'OpenMMLab', 'MMSegmentation', 'MMDetection',
    ],
    python_requires='>=3.8',
    packages=find_packages(include=['mmseg_hrplus', 'mmseg_hrplus.*']),
    cmdclass={'build_py': BuildPyWithMimFiles, 'develop': DevelopWithMimFiles},
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'onnx': read_requirements('onnx.txt'),
        'openvino': read_requirements('openvino.txt'),
        'crf': read_requirements('crf.txt'),
    },
    zip_safe=False,
)
