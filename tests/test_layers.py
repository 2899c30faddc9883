"""The package layers: the store is persistence only, label analysis reads the store through its
query functions, the CLI is one package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "netreveal"
ABOVE_THE_STORE = ("inv", "pipeline", "methods", "model", "labels", "studies", "cli", "web", "concepts")


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


STORE_MODULES = sorted(p for p in (SRC / "store").glob("*.py"))


@pytest.mark.parametrize("path", STORE_MODULES, ids=lambda p: p.stem)
def test_the_store_imports_nothing_above_it(path):
    bad = sorted(n for n in _imports(path) if any(n == f"netreveal.{p}" or n.startswith(f"netreveal.{p}.")
                                                  for p in ABOVE_THE_STORE))
    assert not bad, f"{_module(path)} imports {bad}"


def test_importing_the_store_loads_nothing_above_it():
    code = (
        "import importlib, sys\n"
        f"for name in {[_module(p) for p in STORE_MODULES]!r}:\n"
        "    importlib.import_module(name)\n"
        f"above = [m for m in sys.modules if m.split('.')[0] == 'netreveal' and len(m.split('.')) > 1 "
        f"and m.split('.')[1] in {ABOVE_THE_STORE!r}]\n"
        "print(','.join(sorted(above)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("path", sorted((SRC / "labels").glob("*.py")), ids=lambda p: p.stem)
def test_labels_read_the_store_through_its_query_functions(path):
    bad = sorted(n for n in _imports(path) if n.startswith(("sqlalchemy", "netreveal.store.models")))
    assert not bad, f"{_module(path)} queries store tables itself: {bad}"


def test_the_command_line_is_one_package():
    """Argument parsers and command handlers live in netreveal.cli only (the methods generate their
    own flags from their options, in methods/flags.py)."""
    outside = [p for p in SRC.rglob("*.py") if "cli" not in p.relative_to(SRC).parts[:1]
               and "argparse" in _imports(p) and p != SRC / "methods" / "flags.py"]
    assert [str(p.relative_to(SRC)) for p in outside] == []
    assert not (SRC / "cli.py").exists()


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "netreveal.cli", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "study" in out.stdout and "train-head" in out.stdout
