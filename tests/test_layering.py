"""The import rules of docs/developing.md, read from the source with `ast` (imports at module level and inside
functions alike), so the layering stays true without importing anything."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

# (package folder, what no module under it may import, why)
RULES = [
    ("t2l", ("t2l_cli", "registry", "typer", "rich", "sqlmodel"), "the library knows nothing of the CLI or registry"),
    ("registry", ("torch", "transformers"), "the registry opens without loading a model"),
    ("t2l/tasks", ("t2l.train",), "task collections sit below training"),
    ("t2l_cli/actions", ("typer", "rich"), "actions return data; the verb files parse and print"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; `from . import x` is resolved against its package."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]  # `from t2l import train`
    return found


def under(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


@pytest.mark.parametrize("folder, banned, why", RULES, ids=[r[0] for r in RULES])
def test_no_module_imports_across_a_layer(folder, banned, why):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    broken = [f"{path.relative_to(ROOT)}:{line}: {name}" for path in files for line, name in imported(path)
              if any(under(name, b) for b in banned)]
    assert not broken, f"{why}; these imports cross it:\n" + "\n".join(broken)


def test_the_reader_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    pkg = tmp_path / "t2l" / "tasks"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..train import run\n    import rich.console\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    names = [name for _, name in imported(pkg / "x.py")]
    assert "t2l.train" in names and "t2l.train.run" in names and "rich.console" in names
