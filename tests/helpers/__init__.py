"""Test helpers: small models, float bounds, tool runs. Imported as ``tests.helpers.<module>``
(the repository root is on ``sys.path`` through pytest's ``pythonpath`` setting in setup.cfg);
nothing in the package or ``tools/`` uses them."""
