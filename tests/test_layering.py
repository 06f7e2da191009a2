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
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
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
    broken = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in imported(path)
        if any(under(name, b) for b in banned)
    ]
    assert not broken, f"{why}; these imports cross it:\n" + "\n".join(broken)


def test_the_reader_sees_imports_inside_functions_and_relative_ones(tmp_path, monkeypatch):
    pkg = tmp_path / "t2l" / "tasks"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..train import run\n    import rich.console\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    names = [name for _, name in imported(pkg / "x.py")]
    assert "t2l.train" in names and "t2l.train.run" in names and "rich.console" in names


# The library's layers, bottom first: a module may import modules of its own layer and of those below, never one
# above. An entry names one module (`t2l.errors`) or a package and everything under it (`t2l.tasks.*`); the most
# specific entry wins, so `t2l.eval.data` sits in "benchmark data" and the rest of `t2l.eval` in "evaluation".
# Every module under t2l/ must be named: a new or renamed module fails `test_every_module_has_a_layer` until it is.
LAYERS = [
    (
        "foundations",
        (
            "t2l",
            "t2l.errors",
            "t2l.callbacks",
            "t2l.home",
            "t2l.files",
            "t2l.hashing",
            "t2l.text",
            "t2l.stats",
            "t2l.questions",
            "t2l.locate",
            "t2l.device",
        ),
    ),
    ("benchmark data", ("t2l.eval.benches", "t2l.eval.data")),  # which documents a bench has; no model
    ("tasks", ("t2l.tasks.*",)),  # task collections are data: built from public sources, decontaminated, no model
    (
        "models",
        (
            "t2l.config",
            "t2l.targets",
            "t2l.adapter",
            "t2l.hypernet",
            "t2l.hypermod",
            "t2l.lora_batched",
            "t2l.lm",
            "t2l.bert",
            "t2l.gte",
            "t2l.encoder",
            "t2l.base",
        ),
    ),
    (
        "adapters",
        (
            "t2l.hypernet_files",
            "t2l.authors",
            "t2l.examples",
            "t2l.make",
            "t2l.search",
            "t2l.card",
            "t2l.export",
            "t2l.gguf_lora",
            "t2l.diff",
            "t2l.publish",
            "t2l.chat",
            "t2l.sampling",
            "t2l.scheduler",
        ),
    ),
    ("evaluation", ("t2l.eval.*",)),
    ("training", ("t2l.train.*",)),
    ("experiments", ("t2l.bench.*",)),  # nothing else in the library imports them
]


def library_modules() -> list[str]:
    return sorted(module_name(path) for path in (ROOT / "t2l").rglob("*.py"))


def names(entry: str, module: str) -> bool:
    package = entry.removesuffix(".*")
    return module == package or (entry.endswith(".*") and module.startswith(package + "."))


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the most specific entry naming `module`; None where none does."""
    found = [
        (len(entry), index) for index, (_, entries) in enumerate(LAYERS) for entry in entries if names(entry, module)
    ]
    return max(found)[1] if found else None


def target(name: str, modules: set[str]) -> str | None:
    """The library module an imported name lands in (`t2l.make.AdapterMaker` -> `t2l.make`); None outside t2l."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def upward_imports() -> list[str]:
    modules = set(library_modules())
    broken = []
    for path in sorted((ROOT / "t2l").rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        lands = {(line, there) for line, name in imported(path) if (there := target(name, modules)) is not None}
        for line, there in sorted(lands):  # `from t2l.make import a, b` lands in t2l.make once
            theirs = layer_of(there)
            if mine is not None and theirs is not None and theirs > mine:
                broken.append(
                    f"{path.relative_to(ROOT)}:{line}: {there} ({LAYERS[mine][0]} imports {LAYERS[theirs][0]})"
                )
    return broken


def test_every_module_has_a_layer():
    missing = [module for module in library_modules() if layer_of(module) is None]
    assert not missing, (
        "modules with no layer in tests/test_layering.py LAYERS (add them where they belong):\n" + "\n".join(missing)
    )


def test_every_layer_entry_names_a_module():
    modules = library_modules()
    stale = [entry for _, entries in LAYERS for entry in entries if not any(names(entry, m) for m in modules)]
    assert not stale, "LAYERS names modules that do not exist (renamed or removed?):\n" + "\n".join(stale)


def test_no_module_imports_a_layer_above_its_own():
    broken = upward_imports()
    order = " < ".join(name for name, _ in LAYERS)
    assert not broken, f"the library's layers are {order}; these imports point upwards:\n" + "\n".join(broken)


def test_an_upward_import_fails_and_the_most_specific_entry_wins(tmp_path, monkeypatch):
    for name, text in [
        ("__init__.py", ""),
        ("errors.py", "def f():\n    from t2l.train.run import x\n"),
        ("eval/__init__.py", ""),
        ("eval/data.py", "from t2l.errors import T2LError\n"),
        ("eval/run.py", "from t2l.eval import data\n"),
        ("train/__init__.py", ""),
        ("train/run.py", "from t2l.eval.run import y\nfrom t2l import errors\n"),
    ]:
        (tmp_path / "t2l" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t2l" / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert layer_of("t2l.eval.data") < layer_of("t2l.eval.run") < layer_of("t2l.train.run")
    assert upward_imports() == ["t2l/errors.py:2: t2l.train.run (foundations imports training)"]
