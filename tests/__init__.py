"""The test suite, a package so that ``tests.helpers`` is ours and not the ``tests`` package
mmsegmentation installs into site-packages (the repository root comes first on ``sys.path``
through pytest's ``pythonpath`` setting in setup.cfg)."""
