"""The layout the code promises (docs/architecture.md): every module imports alone, the
imports form no circle, torch stays in gbsbi/inference, configurations load no training loop,
commands are thin, one training loop, no large or stray files in the repository, no citation
of a document the project does not contain."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gbsbi", "simulators")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py":  # runs the command line when imported
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function, but not under
    ``if TYPE_CHECKING:`` (annotations only)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_every_module_imports_alone():
    """Each module, imported first in a clean set of project modules, loads: an import circle
    shows up as an ImportError for some entry point."""
    names = sorted(_modules())
    code = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "bad = []\n"
        "for name in names:\n"
        "    ours = [m for m in sys.modules if m.split('.')[0] in ('gbsbi', 'simulators')]\n"
        "    for loaded in ours:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        bad.append(f'{name}: {type(err).__name__}: {err}')\n"
        "print('\\n'.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_project_imports_form_no_circle():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    # a package's __init__ importing its own modules is the package's face, not a circle
    graph = {name: {m for m in deps if not (m.startswith(name + ".") and
                                            modules[name].name == "__init__.py")}
             for name, deps in graph.items()}
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_torch_and_sbi_are_imported_in_gbsbi_inference_only():
    outside = []
    for name, path in _modules().items():
        if name.startswith("gbsbi.inference"):
            continue
        heavy = {m for m in _imports(path) if m.split(".")[0] in ("torch", "sbi", "nflows", "zuko")}
        if heavy:
            outside.append(f"{name}: {sorted(heavy)}")
    assert outside == []


@pytest.mark.parametrize("module", ["gbsbi.inference.config", "gbsbi.inference.npe.config",
                                    "gbsbi.inference.point.config", "gbsbi.inference.spec"])
def test_configurations_load_no_torch_and_no_training_loop(module):
    code = (f"import sys, {module}; print(sorted(m for m in sys.modules if m in "
            "('torch', 'sbi') or m.startswith('gbsbi.inference.loop') or "
            "m.endswith('.train')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_commands_are_thin():
    """A command parses, calls one library function and prints: no function of gbsbi/cli but
    the parser builders (``register``, ``build_parser``) is over 40 lines."""
    long = []
    for path in sorted((ROOT / "gbsbi" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name not in ("register", "build_parser"):
                lines = node.end_lineno - node.lineno + 1
                if lines > 40:
                    long.append(f"{path.name}:{node.name} {lines} lines")
    assert long == []


def test_one_training_loop():
    """Optimiser steps are taken in gbsbi/inference/loop.py only (and in the point estimator's
    fine-tuning, a few full-batch steps on one group's maps, not a loop over data)."""
    allowed = {"gbsbi/inference/loop.py", "gbsbi/inference/point/train.py"}
    found = set()
    for path in _modules().values():
        text = path.read_text()
        if ".step()" in text and "optim" in text:
            found.add(str(path.relative_to(ROOT)))
    assert found <= allowed
    train = (ROOT / "gbsbi/inference/point/train.py").read_text()
    assert train.count("optimiser.step()") == 1  # fine_tune's, and no second loop


def test_no_large_file_is_tracked_outside_tests_data():
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    big = [name for name in done.stdout.decode().split("\0") if name
           and not name.startswith("tests/data/") and (ROOT / name).is_file()
           and (ROOT / name).stat().st_size > 2 * 2**20]
    assert big == []


def test_no_module_cites_a_document_the_project_does_not_contain():
    stray = []
    for path in [*_modules().values(), *ROOT.glob("studies/*.py"), *ROOT.glob("tests/*.py")]:
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        if "SPEC" in text:
            stray.append(str(path.relative_to(ROOT)))
        for cited in {w.split("#")[0].rstrip(".,);:`'\"") for w in text.split()
                      if w.startswith(("docs/", "(docs/"))}:
            if not (ROOT / cited.lstrip("(")).exists():
                stray.append(f"{path.relative_to(ROOT)} cites {cited}")
    assert stray == []


def test_package_data_that_pyproject_declares_exists():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = data.get("tool", {}).get("setuptools", {}).get("package-data", {})
    missing = [f"{package}/{pattern}" for package, patterns in declared.items()
               for pattern in patterns if not list((ROOT / package).glob(pattern))]
    assert missing == []


def test_the_input_cache_is_the_users_never_the_working_folder(monkeypatch, tmp_path):
    from gbsbi.inference.data import default_cache

    monkeypatch.setenv("GBSBI_CACHE", str(tmp_path / "mine"))
    assert default_cache() == tmp_path / "mine"
    monkeypatch.delenv("GBSBI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache() == tmp_path / "xdg" / "gbsbi"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache() == Path.home() / ".cache" / "gbsbi"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "cache/" in ignored


def test_model_json_is_read_in_one_place():
    readers = [str(path.relative_to(ROOT)) for path in _modules().values()
               if '"model.json"' in path.read_text() or "'model.json'" in path.read_text()]
    assert readers == ["gbsbi/inference/spec.py"]
    assert json.loads('{"a": 1}')  # (json is what it reads)
