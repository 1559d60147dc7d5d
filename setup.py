"""Install mmseg_hrplus, an OpenMMLab plugin (MMSeg 1.x / MMDet 3.x).

The heavy dependencies (torch, mmcv with compiled ops) need an ordered install: see
``tools/install.sh`` (run by ``make install``) and the README's GPU section.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version() -> str:
    text = (HERE / 'mmseg_hrplus' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(name: str) -> list:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


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
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'onnx': read_requirements('onnx.txt'),
        'openvino': read_requirements('openvino.txt'),
        'crf': read_requirements('crf.txt'),
    },
    zip_safe=False,
)
