"""What importing ``mmseg_hrplus`` changes outside the package, in one function.

:func:`setup` runs on ``import mmseg_hrplus`` unless the environment variable
``MMSEG_HRPLUS_NO_SETUP=1`` is set; it can be called again at any time (it is idempotent).
It changes two things of mmengine's, both in :mod:`mmseg_hrplus.checkpoint`:

* every checkpoint scheme of mmengine's ``CheckpointLoader`` reads through our safe reader, so
  no path that loads a checkpoint (local, URL, ``open-mmlab://``...) runs code from the file,
  on any torch version;
* ``mmengine.runner.checkpoint.load_state_dict`` is wrapped so that a strict load of a
  checkpoint that does not fit the model raises one line naming the file and the keys.

Registering our components and the CPU DDP wrapper only adds names to registries.
"""
import os

#: Set to ``1`` to import the package without :func:`setup`.
OPT_OUT_VARIABLE = 'MMSEG_HRPLUS_NO_SETUP'


def setup(safe_checkpoint_loading: bool = True, named_mismatch_errors: bool = True) -> None:
    """Apply the package's process-wide settings.

    Args:
        safe_checkpoint_loading: route every mmengine checkpoint scheme through the safe
            reader (:func:`mmseg_hrplus.checkpoint.install_safe_loaders`).
        named_mismatch_errors: strict-load mismatches name the file
            (:func:`mmseg_hrplus.checkpoint.install_mismatch_errors`).
    """
    from .loaders import install_safe_loaders
    from .mismatch import install_mismatch_errors
    if safe_checkpoint_loading:
        install_safe_loaders()
    if named_mismatch_errors:
        install_mismatch_errors()


def setup_on_import() -> bool:
    """Run :func:`setup` unless opted out; returns whether it ran."""
    if os.environ.get(OPT_OUT_VARIABLE, '') == '1':
        return False
    setup()
    return True
