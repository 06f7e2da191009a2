"""The `t2l` command: the verbs of every t2l_cli module under one root. Each module parses its verbs' arguments,
calls one function of `t2l_cli.actions` (or the library, or the registry) and prints what comes back."""

import typer

from t2l_cli import adapters, bench, evaluate, publish, registry, serve, tasks, train, use

app = typer.Typer(help="Text-to-LoRA: describe a task, get a LoRA adapter.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
for verbs in (adapters.app, use.app, serve.app, publish.app, registry.app, evaluate.app, train.app):
    app.add_typer(verbs)  # unnamed: its verbs sit at the top level
app.add_typer(registry.registry_app, name="registry")
app.add_typer(bench.app, name="bench")
app.add_typer(train.recipes_app, name="recipes")
app.add_typer(tasks.app, name="tasks")


def main() -> None:
    app()
