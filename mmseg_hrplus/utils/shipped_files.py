"""Where an installed mmseg_hrplus keeps the files it ships beside its code.

Like mmsegmentation and mmdet, the package carries ``configs/``, ``tools/`` and
``model-index.yml`` in ``mmseg_hrplus/.mim/`` (setup.py puts them there: copies in a wheel,
links into the checkout in an editable install). ``mim search mmseg_hrplus`` reads the model
index there; a user project inherits a shipped config through the configs folder:

    export MMSEG_HRPLUS_CONFIGS=$(python -m mmseg_hrplus.utils.shipped_files)

and, in the project's config, ``_base_ = ['{{$MMSEG_HRPLUS_CONFIGS:...}}/hrnet/<name>.py']``
(docs/configs_from_the_package.md says why this route and not ``mmseg_hrplus::``).
"""
from pathlib import Path

#: ``mmseg_hrplus/.mim`` of the package this module belongs to.
MIM_DIR = Path(__file__).resolve().parents[1] / '.mim'


def shipped_configs_dir() -> Path:
    """The installed package's configs folder, ``<site-packages>/mmseg_hrplus/.mim/configs``.

    Raises:
        FileNotFoundError: the folder is missing, as in a checkout that pip never installed.
    """
    configs = MIM_DIR / 'configs'
    if not configs.is_dir():
        raise FileNotFoundError(
            f'{configs} does not exist: pip creates it when it installs mmseg_hrplus '
            '(pip install . or pip install -e .); a checkout that is only on PYTHONPATH has '
            "none, and its configs are the checkout's configs/ folder")
    return configs


if __name__ == '__main__':
    print(shipped_configs_dir())
