"""Re-export of :mod:`tests.helpers.tiny_run` for the tests that still import it by its old
name (tests/tools/test_checkpoint_security.py); remove once they import the helper directly."""
from tests.helpers.tiny_run import (QUICKSTART, REPO, make_data, output, run_tool,  # noqa: F401
                                    tool_env, write_config)
