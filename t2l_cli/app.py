"""The `t2l` command: every verb and the module that holds it, in the two tables below. Each module parses its
verbs' arguments, calls one function of its namesake in `t2l_cli.actions` (or the library, or the registry) and
prints what comes back."""

from typing import Annotated

import typer

from t2l_cli import adapters, bench, evaluate, publish, registry, serve, tasks, train, use

# `t2l VERB`: the module whose Typer app defines it, in the order `t2l --help` lists them
VERBS = {
    "make": adapters,
    "ls": adapters,
    "search": adapters,
    "show": adapters,
    "rm": adapters,
    "export": adapters,
    "tag": adapters,
    "untag": adapters,
    "rename": adapters,
    "diff": adapters,
    "run": use,
    "chat": use,
    "serve": serve,
    "publish": publish,
    "eval": evaluate,
    "train": train,
}
# `t2l GROUP VERB`: the Typer app that holds the group's verbs (see `t2l GROUP --help`)
GROUPS = {
    "registry": registry.registry_app,  # path, stats, vacuum, backup, verify
    "hypernets": registry.hypernets_app,  # (list), import, show, rm
    "bench": bench.app,  # paper, unseen
    "recipes": train.recipes_app,  # ls, cp
    "tasks": tasks.app,  # build, ls
}

app = typer.Typer(
    help="Text-to-LoRA: describe a task, get a LoRA adapter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _command(verbs: typer.Typer, verb: str):
    """The registered command of `verbs` named `verb` (Typer names an unnamed one after its function)."""
    return next(
        c for c in verbs.registered_commands if (c.name or c.callback.__name__.lower().replace("_", "-")) == verb
    )


for _verb, _module in VERBS.items():
    app.registered_commands.append(_command(_module.app, _verb))


def _print_version(asked: bool) -> None:
    if asked:
        import t2l

        typer.echo(f"t2l {t2l.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print t2l's version and exit.")
    ] = False,
) -> None:
    pass


for _group, _verbs in GROUPS.items():
    app.add_typer(_verbs, name=_group)


def main() -> None:
    app()
