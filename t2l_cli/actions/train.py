"""The action of `t2l train`: run a recipe and register what it made."""

from pathlib import Path

from registry import Registry
from t2l_cli.actions.common import open_registry


def train(recipe: str, overrides: list[str], resume: Path | None, on_event):
    """Run a recipe and register what it made; (the run's result, its registry row or None on a rank other than 0:
    under torchrun rank 0 alone registers)."""
    from t2l.train.recipe import load_recipe
    from t2l.train.run import run_recipe

    settings = load_recipe(recipe, overrides)
    reg = None  # opened where it is needed: every rank reads recon's sources, rank 0 alone registers
    if settings.kind == "recon":
        reg = open_registry()
        settings.recon.sources = _recon_sources(reg, settings.recon.sources)
    result = run_recipe(settings, resume=resume, on_event=on_event)
    if result.rank != 0:
        return result, None
    return result, _register_result(reg or open_registry(), result, settings.run.name)


def _recon_sources(reg: Registry, sources: list) -> list:
    """Recon sources with registered adapters' names or ids replaced by their stored, hash-checked files."""
    return [
        s if isinstance(s, dict) or Path(s).exists() else str(reg.adapter_file(reg.get_adapter(s))) for s in sources
    ]


def _register_result(reg: Registry, result, name: str | None):
    """Register what the run wrote, from what it says it wrote (no config read back), under `name` (a resumed run:
    only when run.name= is given again, as its first sitting registered under it already) and tagged with the kind
    of the recipe that ran (a resumed run's own, not the --recipe default)."""
    if result.kind == "hypernet":
        return reg.add_hypernet(result.artifact, name=name, **result.info.registry_fields())
    return reg.add_adapter(
        result.artifact.read_bytes(), name=name, tags=[result.recipe.kind], **result.info.registry_fields()
    )
