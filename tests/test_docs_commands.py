"""The commands in README.md and docs/ exist as written.

Every fenced ``bash`` block is split into commands (continuation lines joined, comments cut);
for each command:

* ``python tools/x.py``, ``bash tools/x.sh`` and ``python -m a.b`` name a file of this
  repository;
* every ``--flag`` given to a Python tool is defined by the tool or by a module of this
  repository it imports (checked statically, in the sources: no tool is run);
* ``make target`` names a Makefile target;
* every ``configs/...py`` path exists (except a user project's own, named ``my_*.py`` in the
  docs, and the test files of ``tests/configs/``), and every ``mmseg::``/``mmdet::`` config
  is in the installed package;

and every ``'mmseg_hrplus.Name'`` in the docs' text is a registered component. The page of
earlier, hand-recorded measurements is left out: it quotes the commands of older commits.
"""
import ast
import re
import shlex
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md')),
        *sorted((REPO / 'projects').glob('*/README.md'))]
HISTORICAL = {REPO / 'docs' / 'benchmarks_history.md'}
CHECKED_DOCS = [p for p in DOCS if p not in HISTORICAL]

FENCE = re.compile(r'^```(\w*)\s*$')
CONFIG_PATH = re.compile(r'(?<![\w/.:-])(configs/[\w./-]+\.py)\b')
PACKAGE_CONFIG = re.compile(r'\b(mmseg|mmdet)::([\w./-]+\.py)\b')
REGISTERED_NAME = re.compile(r"""['"]mmseg_hrplus\.([A-Z]\w+)['"]""")


def code_blocks(path: Path) -> Iterator[Tuple[str, int, List[str]]]:
    """``(language, first line number, lines)`` of each fenced block in ``path``."""
    lang, start, body = None, 0, []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        match = FENCE.match(line.strip())
        if match and lang is None:
            lang, start, body = match.group(1) or 'text', number + 1, []
        elif line.strip() == '```' and lang is not None:
            yield lang, start, body
            lang = None
        elif lang is not None:
            body.append(line)


def shell_commands(lines: List[str]) -> Iterator[List[str]]:
    """The commands of a bash block as token lists: continuations joined, comments and
    environment assignments removed, ``&&``/``;``-chains split."""
    joined, pending = [], ''
    for line in lines:
        if line.rstrip().endswith('\\'):
            pending += line.rstrip()[:-1] + ' '
            continue
        joined.append(pending + line)
        pending = ''
    for line in joined:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as err:
            raise AssertionError(f'unparseable shell line {line!r}: {err}')
        command: List[str] = []
        for token in tokens + [';']:
            if token in ('&&', ';', '||', '|'):
                while command and re.fullmatch(r'[A-Z_]+=\S*', command[0]):
                    command.pop(0)
                if command:
                    yield command
                command = []
            else:
                command.append(token)


def all_commands() -> Iterator[Tuple[str, List[str]]]:
    for path in CHECKED_DOCS:
        for lang, start, body in code_blocks(path):
            if lang in ('bash', 'sh', 'shell'):
                for command in shell_commands(body):
                    yield f'{path.relative_to(REPO)}:{start}', command


def module_file(dotted: str) -> Path:
    base = REPO.joinpath(*dotted.split('.'))
    for candidate in (base.with_suffix('.py'), base / '__init__.py', base / '__main__.py'):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(dotted)


def repo_sources(script: Path, seen: Set[Path] = None) -> Set[Path]:
    """``script`` and every module of this repository it imports, transitively."""
    seen = set() if seen is None else seen
    if script in seen:
        return seen
    seen.add(script)
    tree = ast.parse(script.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
        for name in names:
            if name.split('.')[0] not in ('mmseg_hrplus', 'tools', 'projects'):
                continue
            try:
                repo_sources(module_file(name), seen)
            except FileNotFoundError:
                pass  # a class or function imported from a module, not a module
    return seen


def defined_flags(script: Path) -> Set[str]:
    flags: Set[str] = set()
    for source in repo_sources(script):
        flags.update(re.findall(r"""['"](--[\w-]+)['"]""", source.read_text(encoding='utf-8')))
    return flags


def python_tool(command: List[str]) -> Tuple[Path, List[str]]:
    """The repository file a ``python``/``bash`` command runs and its arguments, or (None, [])."""
    if command[0] in ('python', 'python3') and len(command) > 1:
        if command[1] == '-m':
            if command[2].split('.')[0] not in ('mmseg_hrplus', 'tools', 'projects', 'tests'):
                return None, []  # a module of another package (venv, pip, ...)
            return module_file(command[2]), command[3:]
        if command[1].endswith('.py') and not command[1].startswith('$'):
            return REPO / command[1], command[2:]  # ($VAR/x.py: another package's script)
    if command[0] == 'bash' and len(command) > 1 and command[1].startswith('tools/'):
        return REPO / command[1], command[2:]
    return None, []


def test_the_docs_have_commands_to_check():
    commands = list(all_commands())
    tools = {str(python_tool(c)[0].relative_to(REPO)) for _, c in commands
             if python_tool(c)[0] is not None}
    expected = {'tools/train.py', 'tools/test.py', 'tools/infer.py', 'tools/dist_train.sh',
                'tools/model_converters/convert.py'}
    assert expected <= tools, sorted(expected - tools)


@pytest.mark.parametrize('where, command', list(all_commands()),
                         ids=lambda v: v if isinstance(v, str) else ' '.join(v)[:60])
def test_command_exists_as_written(where, command):
    text = ' '.join(command)
    if command[0] == 'make':
        targets = set(re.findall(r'^([\w-]+):', (REPO / 'Makefile').read_text(), re.M))
        for target in command[1:]:
            assert target in targets, f'{where}: `{text}`: no Makefile target {target!r}'
        return
    try:
        script, args = python_tool(command)
    except FileNotFoundError as err:
        raise AssertionError(f'{where}: `{text}`: no module {err}')
    if script is not None:
        assert script.is_file(), f'{where}: `{text}`: {script.relative_to(REPO)} does not exist'
        if script.suffix == '.py':
            missing = {a.split('=')[0] for a in args if a.startswith('--')} - defined_flags(script)
            assert not missing, f'{where}: `{text}`: {script.name} defines no {sorted(missing)}'


@pytest.mark.parametrize('path', CHECKED_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_paths_exist(path):
    import mmdet
    import mmseg
    text = path.read_text(encoding='utf-8')
    missing = [c for c in CONFIG_PATH.findall(text) if not (REPO / c).is_file()
               and not Path(c).name.startswith(('my_', 'test_'))]  # a user's; tests/configs/
    roots = {'mmseg': Path(mmseg.__file__).parent, 'mmdet': Path(mmdet.__file__).parent}
    missing += [f'{pkg}::{rel}' for pkg, rel in PACKAGE_CONFIG.findall(text)
                if not (roots[pkg] / '.mim' / 'configs' / rel).is_file()]
    assert not missing, f'{path.relative_to(REPO)} names configs that do not exist: {missing}'


def test_registered_names_in_the_docs_exist():
    import mmseg_hrplus  # noqa: F401  registers the components
    from mmseg.registry import MODELS
    names = {name for path in CHECKED_DOCS
             for name in REGISTERED_NAME.findall(path.read_text(encoding='utf-8'))}
    assert 'HRNet' in names
    unknown = sorted(n for n in names if MODELS.get(f'mmseg_hrplus.{n}') is None)
    assert not unknown, f'the docs name unregistered components: {unknown}'


def test_shell_command_splitting():
    lines = ['A=1 python tools/x.py --a 1 \\', '    --b 2   # note', 'make demo && make test']
    assert list(shell_commands(lines)) == [
        ['python', 'tools/x.py', '--a', '1', '--b', '2'], ['make', 'demo'], ['make', 'test']]
