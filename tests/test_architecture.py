"""The layering of docs/ARCHITECTURE.md, checked on the source: every import inside the package
points down (or stays in its own folder), no modules import each other in a circle, and the
scripts (tools/, projects/, tests/) neither edit sys.path nor import one another."""
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mmseg_hrplus'

#: Each folder (area) of the package and its layer: a module may import modules of its own area
#: and of lower layers only. docs/ARCHITECTURE.md draws the same table.
LAYERS: Dict[str, int] = {
    'utils': 0, 'version': 0,
    'registry': 1,
    'checkpoint': 2, 'datasets': 2,
    'models.utils': 4,
    'models.layers': 5,
    'models.backbones': 6, 'models.necks': 6, 'models.decode_heads': 6, 'models.postprocess': 6,
    'models.segmentors': 7,
    'models': 8,  # models/__init__.py: imports every folder of models/ (registration)
    'converters': 9, 'engine': 9,
    'apis': 10, 'deploy': 10,
    'benchmark': 11,
    '': 12,  # mmseg_hrplus/__init__.py: imports everything so that importing it registers all
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def area(module: str) -> str:
    parts = module.split('.')[1:]
    if parts[:1] == ['models'] and len(parts) > 1:
        return f'models.{parts[1]}'
    return parts[0] if parts else ''


def package_imports() -> Dict[str, Set[str]]:
    """Module -> the package modules it imports (anywhere in it, function bodies included),
    each resolved to the module file it names; the importer's own ancestors, which Python
    imports before the importer anyway, are left out."""
    modules = {module_name(p): p for p in PACKAGE.rglob('*.py')}
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == '__init__.py'
        targets: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split('.')[:None if is_package else -1]
                    base = base[:len(base) - node.level + 1]
                    prefix = '.'.join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ''
                wanted = [prefix] + [f'{prefix}.{alias.name}' for alias in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in modules:
                    target = target.rpartition('.')[0]
                if target.startswith('mmseg_hrplus') and not (
                        name == target or name.startswith(target + '.')):
                    targets.add(target)
        graph[name] = targets
    return graph


def test_every_area_has_a_layer():
    unknown = sorted({area(m) for m in package_imports()} - set(LAYERS))
    assert not unknown, (f'{unknown}: a new folder of the package; give it a layer in LAYERS '
                         f'here and in docs/ARCHITECTURE.md')


def test_imports_point_down():
    upward: List[Tuple[str, str]] = []
    for module, targets in package_imports().items():
        for target in targets:
            if area(target) != area(module) and LAYERS[area(target)] >= LAYERS[area(module)]:
                upward.append((module, target))
    assert not upward, '\n'.join(f'{a} imports {b}' for a, b in sorted(upward))


def test_no_circular_imports():
    graph = package_imports()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    cycles: List[List[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_layering_test_sees_a_violation():
    """The checks above are not vacuous: models importing deploy would be caught."""
    assert LAYERS[area('mmseg_hrplus.deploy.optimize')] > LAYERS[
        area('mmseg_hrplus.models.backbones.hrnet')]
    graph = package_imports()
    assert 'mmseg_hrplus.models.decode_heads' in graph['mmseg_hrplus.deploy.optimize']
    assert 'mmseg_hrplus.utils.validation' in graph['mmseg_hrplus.models.backbones.hrnet']


def _scripts(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((REPO / folder).rglob('*.py'))


def _sys_path_uses(path: Path) -> List[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == 'path'
            and isinstance(node.value, ast.Name) and node.value.id == 'sys']


def test_no_script_edits_sys_path():
    """Tools and projects import the installed package; tests import their helpers as
    ``tests.helpers`` (pytest's ``pythonpath``) and load tools from their files."""
    found = {str(p.relative_to(REPO)): lines for p in _scripts('tools', 'projects', 'tests')
             if (lines := _sys_path_uses(p))}
    assert not found, found


def test_no_tool_imports_another_tool():
    tools = list(_scripts('tools'))
    names = {p.stem for p in tools}
    found = []
    for path in tools:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split('.')[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = ['.'] if node.level else [(node.module or '').split('.')[0]]
            else:
                continue
            found += [(str(path.relative_to(REPO)), root) for root in roots
                      if root in names | {'.', 'tools', 'tests', 'projects'}]
    assert not found, found
