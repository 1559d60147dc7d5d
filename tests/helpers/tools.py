"""The command-line tools of ``tools/`` as modules, for tests that call their functions.

A tool is a script, not a package module: it is loaded from its file under a name of its own
(``hrplus_tool_<stem>``) instead of putting ``tools/`` on ``sys.path``. Each tool is loaded once
per process, so tests that monkeypatch a tool's attributes see one module object.
"""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def load_tool(path: str) -> ModuleType:
    """The tool ``tools/<path>`` (e.g. ``'infer.py'``, ``'analysis_tools/get_flops.py'``)."""
    file = TOOLS / path
    name = f'hrplus_tool_{file.stem}'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f'no tool at {file}')
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def run_tool_main(tool: ModuleType, argv):
    """``tool.main(argv)`` in this process, restoring torch's thread count afterwards (tools
    such as benchmark.py set it)."""
    import torch
    threads = torch.get_num_threads()
    try:
        return tool.main(argv)
    finally:
        torch.set_num_threads(threads)
