"""Each option default is declared once, in the library or a settings dataclass, and the verb reads it from there
(issue #27): an option named like a field of its settings defaults to that field's default."""

import dataclasses
import inspect

import pytest
import typer.main

from t2l.bench.paper import PaperSettings
from t2l.bench.unseen import UnseenSettings
from t2l.sampling import Sampling
from t2l.tasks.collection import MAX_EXAMPLES
from t2l_cli.actions.evaluate import EvalSettings
from t2l_cli.app import app
from t2l_cli.server.service import ServeSettings

# (verb, the settings its options mirror)
VERBS = [
    ("bench paper", PaperSettings),
    ("bench unseen", UnseenSettings),
    ("eval", EvalSettings),
    ("serve", ServeSettings),
    ("run", Sampling),
    ("chat", Sampling),
]
# options that share a field's name but mean something else by their default, and why
OWN = {
    ("bench paper", "also"): "None: no extra rows (the field's {} once parsed)",
    ("run", "max_new_tokens"): "None: Sampling.max_new_tokens or what the context leaves",
    ("chat", "max_new_tokens"): "None: Sampling.max_new_tokens or what the context leaves",
}


def options(verb: str) -> dict:
    command = typer.main.get_command(app)
    for word in verb.split():
        command = command.commands[word]
    return {param.name: param for param in command.params}


def declared(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    value = field.default
    return ",".join(value) if isinstance(value, tuple) else value  # tuples are typed comma-separated


@pytest.mark.parametrize("verb, settings", VERBS, ids=[v for v, _ in VERBS])
def test_options_default_to_their_settings_fields(verb, settings):
    params = options(verb)
    shared = [f for f in dataclasses.fields(settings) if f.name in params and (verb, f.name) not in OWN]
    assert shared, verb
    differ = [
        f"--{f.name.replace('_', '-')}: {params[f.name].default!r}, the field {declared(f)!r}"
        for f in shared
        if params[f.name].default != declared(f)
    ]
    assert not differ, f"t2l {verb}'s defaults differ from {settings.__name__}'s:\n" + "\n".join(differ)


def test_run_and_chat_say_the_library_token_limit():
    for verb in ("run", "chat"):
        assert f"default: {Sampling.max_new_tokens}," in options(verb)["max_new_tokens"].help


def test_tasks_build_keeps_as_many_examples_as_the_builders():
    from t2l.tasks import builtin, olmo_eval, olmo_forms, openai_evals, sni, synthetic, unseen

    assert options("tasks build")["max_examples"].default == MAX_EXAMPLES
    builders = [
        builtin.build_builtin,
        olmo_eval.build_olmo_eval,
        olmo_forms.build_olmo_forms,
        openai_evals.build_openai_evals,
        sni.build_sni,
        synthetic.build_synthetic,
        synthetic.build_synthetic_collection,
        unseen.build_unseen,
    ]
    assert {b.__name__: inspect.signature(b).parameters["max_examples"].default for b in builders} == {
        b.__name__: MAX_EXAMPLES for b in builders
    }
