"""The package's layers (docs/architecture.md): each imports only those below it, no
module imports itself back through others, no two files share a name, and the
torch-free layers import neither torch, sleap-nn nor an optional engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sleap_export"
# Lowest first: a module may import its own layer and those before it.
LAYERS = ("core", "runtime", "exporting", "evaluation", "demo", "cli")
# Outside the layers: the package's lazy public names, `python -m`, and the old paths' table.
ABOVE_THE_LAYERS = {"sleap_export", "sleap_export.__main__", "sleap_export.old_import_paths"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every sleap_export module ``path`` imports, at the top or inside functions;
    ``from package import module`` counts as importing the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules or {node.module})
    return {name for name in found if name in MODULES}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    for module, path in MODULES.items():
        if module in ABOVE_THE_LAYERS:
            continue
        assert module.split(".")[1] in LAYERS, f"{module} is in no layer; move it into one of {LAYERS}"
        upward = {name for name in _imports(path) if name not in ABOVE_THE_LAYERS and _layer(name) > _layer(module)}
        assert not upward, f"{module} ({LAYERS[_layer(module)]}) imports {sorted(upward)} from above"
        assert not _imports(path) & {"sleap_export", "sleap_export.old_import_paths"} - {module}, module


def test_no_import_cycles():
    graph = {module: _imports(path) - {module} for module, path in MODULES.items()}
    on_path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in on_path:
            cycle = on_path[on_path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        on_path.append(module)
        for name in sorted(graph[module]):
            visit(name)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_no_two_source_files_share_a_name():
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    files += list((PACKAGE.parent / "scripts").glob("*.py"))
    names = Counter(p.name for p in files)
    assert not [n for n, count in names.items() if count > 1], sorted(p for p in files if names[p.name] > 1)


def _run_python(code: str) -> None:
    """``code`` in a fresh interpreter; its failure, with its stderr, fails the test."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_torch_free_layers_import_no_torch_no_sleap_nn_and_no_optional_engine():
    """Every module of the core and the runtime imported in a fresh process: none of torch,
    sleap-nn, the upper layers, Ray, OpenVINO or TensorRT gets imported."""
    code = (
        "import importlib, sys\n"
        f"names = {sorted(m for m in MODULES if m.split('.')[1:2] in (['core'], ['runtime']))!r}\n"
        "[importlib.import_module(name) for name in names]\n"
        "heavy = ('torch', 'sleap_nn', 'ray', 'openvino', 'tensorrt', 'sleap_export.exporting',"
        " 'sleap_export.evaluation', 'sleap_export.cli')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy))\n"
        "assert not loaded, loaded\n"
    )
    _run_python(code)


def test_old_import_paths_give_the_moved_modules():
    """One release of the 0.1.0 paths: a moved module is the same object; a split one finds
    each name where it lives now."""
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "import sleap_export\n"
        "try:\n"
        "    import sleap_export.runtime.live\n"
        "except DeprecationWarning as warning:\n"
        "    assert 'sleap_export.runtime.drivers.live' in str(warning)\n"
        "warnings.simplefilter('ignore')\n"
        "import sleap_export.runtime.live as old, sleap_export.runtime.drivers.live as new\n"
        "assert old is new\n"
        "from sleap_export.runtime.runners import OnnxRunner, Runner, usable_cores\n"
        "from sleap_export.runtime.backends import onnx_runner, runner\n"
        "assert OnnxRunner is onnx_runner.OnnxRunner and Runner is runner.Runner\n"
        "from sleap_export.check import tolerance_for, check_artifact\n"
        "from sleap_export.core.tolerances import tolerance_for as moved\n"
        "assert tolerance_for is moved\n"
        "try:\n"
        "    from sleap_export.runtime.runners import no_such_name\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('an unknown name was found')\n"
    )
    _run_python(code)
