import ast
import re
import subprocess
import sys
from pathlib import Path

ZOO = Path(__file__).resolve().parents[2] / "generators"


def test_zoo_never_imports_the_distillation_side():
    code = ("import sys, generators.io, generators.train, generators.foreign; "
            "bad = sorted(m for m in sys.modules if m.startswith(('genprior.run', 'genprior.objectives', "
            "'genprior.synsets', 'genprior.evaluate'))); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def genprior_imports() -> tuple[set[str], set[str]]:
    """(genprior modules generators/*.py import at module level, those imported only inside functions)."""
    top, inner = set(), set()
    for path in sorted(ZOO.glob("*.py")):
        tree = ast.parse(path.read_text())
        in_functions = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                        for node in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "genprior":
                names = [f"genprior.{a.name}" for a in node.names]  # from genprior import options
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            modules = {".".join(n.split(".")[:2]) for n in names if n.split(".")[0] == "genprior"}
            (inner if id(node) in in_functions else top).update(modules)
    return top, inner - top


def listed(doc: str, label: str) -> set[str]:
    """The modules a `label   genprior.{a, b}` line of generators/__init__.py names."""
    found = re.search(rf"^\s*{label}\s+genprior\.\{{([^}}]*)\}}", doc, re.M)
    assert found, f"generators/__init__.py has no '{label}   genprior.{{...}}' line"
    return {f"genprior.{name.strip()}" for name in found.group(1).split(",")}


def test_the_zoo_docstring_lists_exactly_what_it_imports():
    doc = (ZOO / "__init__.py").read_text()
    top, lazy = genprior_imports()
    assert top == listed(doc, "at import") and lazy == listed(doc, "lazily")
    forbidden = ("genprior.run", "genprior.synsets", "genprior.objectives", "genprior.evaluate")
    assert not {m for m in top | lazy if m.startswith(forbidden)}
