"""The `t2l` command: the verbs of every t2l_cli module under one root. Each module parses its verbs' arguments,
calls one function of `t2l_cli.actions` (or the library, or the registry) and prints what comes back."""

from typing import Annotated

import typer

from t2l_cli import adapters, bench, evaluate, publish, registry, serve, tasks, train, use

app = typer.Typer(help="Text-to-LoRA: describe a task, get a LoRA adapter.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
for verbs in (adapters.app, use.app, serve.app, publish.app, evaluate.app, train.app):
    app.add_typer(verbs)  # unnamed: its verbs sit at the top level


def _print_version(asked: bool) -> None:
    if asked:
        import t2l

        typer.echo(f"t2l {t2l.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print t2l's version and exit.")] = False) -> None:
    pass


app.add_typer(registry.registry_app, name="registry")
app.add_typer(registry.hypernets_app, name="hypernets")
app.add_typer(bench.app, name="bench")
app.add_typer(train.recipes_app, name="recipes")
app.add_typer(tasks.app, name="tasks")


def main() -> None:
    app()
