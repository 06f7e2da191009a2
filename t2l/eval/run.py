"""Evaluating a model (bare, or with adapters swapped in) on benchmarks; metrics and their standard errors."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from t2l.callbacks import Progress
from t2l.errors import T2LError
from t2l.eval.benches import PROTOCOLS, Bench, Item, protocol_name
from t2l.eval.prompts import (
    PromptSettings,
    chat,
    check_chat_template,
    dress_items,
    fewshot_examples,
    solved,
    with_instruction,
    wrap,
)
from t2l.eval.scoring import loglikelihoods
from t2l.stats import mean_stderr


@dataclass
class BenchResult:
    bench: str
    split: str
    n: int
    metrics: dict[str, tuple[float, float]]  # name -> (value, stderr)
    protocol: str
    data_sha256: str
    limit: int | None
    predictions: list[int] = field(default_factory=list)  # per item, the choice `acc` picked
    per_item: dict[str, list[float]] = field(default_factory=dict)  # metric -> its value on each item


def score(bench: Bench, items: list[Item], logliks: list[float]) -> tuple[dict[str, list[float]], list[int]]:
    metrics: dict[str, list[float]] = {m: [] for m in bench.metrics}
    preds, k = [], 0
    for item in items:
        ll = logliks[k : k + len(item.continuations)]
        k += len(item.continuations)
        pred = max(range(len(ll)), key=ll.__getitem__)
        preds.append(pred)
        metrics["acc"].append(float(pred == item.gold))
        if "acc_norm" in metrics:
            norm = [v / n for v, n in zip(ll, item.choice_chars)]
            metrics["acc_norm"].append(float(max(range(len(norm)), key=norm.__getitem__) == item.gold))
    return metrics, preds


DTYPES = ("float32", "bfloat16")  # float16 overflows in these models' activations; the scores would be noise


def check_settings(limit: int | None, protocol: str, shots: int, batch_size: int = 16, dtype: str = "float32") -> None:
    """Refuse settings no evaluation can run with, before anything is loaded."""
    if dtype not in DTYPES:
        raise T2LError(f"unknown --dtype {dtype!r}: use {' or '.join(DTYPES)}")
    if batch_size <= 0:
        raise T2LError(f"--batch-size must be a positive number of sequences, not {batch_size}")
    if limit is not None and limit <= 0:
        raise T2LError(f"--limit must be a positive number of items, not {limit}")
    if protocol_name(protocol) not in PROTOCOLS:
        raise T2LError(f"unknown protocol {protocol!r}: use {' or '.join(PROTOCOLS)}")
    if shots < 0:
        raise T2LError(f"--shots must be 0 or more, not {shots}")
    if shots and protocol_name(protocol) == "letter":
        raise T2LError("the letter protocol is zero-shot; drop --shots or use --protocol lm-eval")


def evaluate(
    model,
    tokenizer,
    bench: Bench,
    docs: list[dict],
    data_sha256: str,
    limit: int | None = None,
    batch_size: int = 16,
    on_progress: Progress | None = None,
    protocol: str = "lm-eval",
    prompt: PromptSettings | None = None,
    pool: list[dict] | None = None,
) -> BenchResult:
    """Score `docs` (the first `limit` of them) on `bench`. Few-shot examples come from `pool` (a train split) or,
    without one, from `docs` themselves minus the item being asked."""
    prompt = prompt or PromptSettings()
    check_settings(limit, protocol, prompt.shots)
    protocol = protocol_name(protocol)
    if prompt.chat_template and protocol == "lm-eval":
        check_chat_template(tokenizer)
    evaluated = docs[:limit] if limit else docs
    prefixes = [""] * len(evaluated)
    if prompt.shots:
        prompt = replace(prompt, fewshot_source="train" if pool is not None else bench.split)
        examples = fewshot_examples(evaluated, pool if pool is not None else docs, prompt.shots, pool is None)
        to_text = bench.to_item or _gsm8k_example
        prefixes = ["".join(solved(to_text(e)) for e in shown) for shown in examples]
    done = [0]

    def tick(total: int):
        def step(n: int) -> None:
            done[0] += n
            if on_progress:
                on_progress(done[0], total)

        return step

    if protocol == "letter":
        per_item, preds = _letter(model, tokenizer, bench, evaluated, batch_size, tick, prompt.instruction)
    elif bench.to_item is None:
        prompts = [
            wrap(f"Question: {d['question']}\nAnswer:", p, prompt, tokenizer) for d, p in zip(evaluated, prefixes)
        ]
        per_item, preds = _gsm8k(model, tokenizer, evaluated, prompts, batch_size, tick)
    else:
        items = dress_items([bench.to_item(d) for d in evaluated], prefixes, prompt, tokenizer)
        pairs = [(c, x) for item in items for c, x in zip(item.contexts, item.continuations)]
        logliks = [ll for ll, _ in loglikelihoods(model, tokenizer, pairs, batch_size, on_progress=tick(len(pairs)))]
        per_item, preds = score(bench, items, logliks)
    version = PROTOCOLS[protocol] + (
        prompt.tag() if protocol == "lm-eval" else ("+instruction" if prompt.instruction else "")
    )
    metrics = {m: mean_stderr(v) for m, v in per_item.items()}
    return BenchResult(bench.name, bench.split, len(evaluated), metrics, version, data_sha256, limit, preds, per_item)


GSM8K_UNTIL = ["Question:", "</s>", "<|im_end|>"]


def _gsm8k_example(doc: dict) -> Item:
    """A gsm8k document as a solved few-shot example: its prompt and its whole worked answer."""
    return Item([f"Question: {doc['question']}\nAnswer:"], [" " + doc["answer"]], 0, [len(doc["answer"])])


def _gsm8k(model, tokenizer, docs, prompts, batch_size, tick):
    """lm-eval's gsm8k: greedy generation, strict-match and flexible-extract exact match."""
    from t2l.eval.answers import flexible_extract, gsm8k_correct, strict_match
    from t2l.eval.generate import generate_until

    outputs = generate_until(model, tokenizer, prompts, GSM8K_UNTIL, 256, batch_size, tick(len(prompts)))
    strict = [float(gsm8k_correct(strict_match(o), d["answer"])) for o, d in zip(outputs, docs)]
    flexible = [float(gsm8k_correct(flexible_extract(o), d["answer"])) for o, d in zip(outputs, docs)]
    return {"strict-match": strict, "flexible-extract": flexible}, [int(f) for f in flexible]


def _chat(tokenizer, body: str, instruction: str | None) -> str:
    body = with_instruction(body, instruction)
    if tokenizer.chat_template:
        return chat(tokenizer, body)
    return body + "\nAnswer:"  # a base model without a chat template gets the plain prompt


def _letter(model, tokenizer, bench, docs, batch_size, tick, instruction):
    """The Text-to-LoRA authors' protocol: lettered choices in the chat template, the first letter generated."""
    from t2l.eval.answers import final_number, parse_letter
    from t2l.eval.generate import generate_until
    from t2l.questions import letter_prompt

    if bench.to_question is None:  # gsm8k: the final number
        prompts = [
            _chat(tokenizer, d["question"] + "\nSolve the problem, then give the final number.", instruction)
            for d in docs
        ]
        outputs = generate_until(model, tokenizer, prompts, [], 256, batch_size, tick(len(prompts)))
        hits = [
            float(final_number(o) == d["answer"].split("####")[-1].strip().replace(",", ""))
            for o, d in zip(outputs, docs)
        ]
        return {"exact_match": hits}, [int(h) for h in hits]
    questions = [bench.to_question(d) for d in docs]
    prompts = [_chat(tokenizer, letter_prompt(q), instruction) for q in questions]
    outputs = generate_until(model, tokenizer, prompts, [], 8, batch_size, tick(len(prompts)))
    preds = [parse_letter(o, len(q.choices)) for o, q in zip(outputs, questions)]
    return {"acc": [float(p == q.gold) for p, q in zip(preds, questions)]}, preds


@dataclass
class Subject:
    """What gets evaluated: the bare base (`path` None) or an adapter file/folder."""

    label: str
    path: Path | None = None  # Path to an adapter, or None for the base model
    benches: list[str] | None = None  # only these benches (None: all asked for)
    instruction: str | None = None  # text put before every prompt (the description-in-the-prompt baseline)


def run_eval(
    subjects: list[Subject],
    benches: list[Bench],
    base_spec: str,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    dtype: str = "float32",
    data_dir=None,
    protocol: str = "lm-eval",
    prompt: PromptSettings | None = None,
    device: str = "auto",
    from_hub: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_result: Callable[[Subject, BenchResult], None] | None = None,
) -> list[tuple[Subject, BenchResult]]:
    """Load the base once, then evaluate every subject on every bench, swapping adapters in through hooks.
    Every adapter must have been made for `base_spec`'s weights."""
    from t2l.adapter import read_adapter
    from t2l.base import identify_base, load_base
    from t2l.device import resolve_device
    from t2l.eval.data import load_docs, load_fewshot_pool
    from t2l.lora_batched import applied, lora_weights

    check_settings(limit, protocol, prompt.shots if prompt else 0, batch_size, dtype)
    where = resolve_device(device)
    base_ref = identify_base(base_spec)
    loaded: list[tuple[Subject, tuple[dict, dict] | None]] = []  # (tensors, PEFT config), None for the base
    for s in subjects:
        if s.path is None:
            loaded.append((s, None))
            continue
        tensors, info, peft_config = read_adapter(s.path)
        if info is not None and not info.base.same_weights(base_ref):
            raise T2LError(
                f"{s.label} was made for base model {info.base.name} (sha256 {info.base.sha256[:12]}), "
                f"not {base_ref.name} (sha256 {base_ref.sha256[:12]}); evaluate it with --base "
                f"{info.base_spec}"
            )
        loaded.append((s, (tensors, peft_config)))
    data = {b.name: load_docs(b, data_dir, from_hub) for b in benches}
    pools = {b.name: load_fewshot_pool(b, data_dir, from_hub) for b in benches} if prompt and prompt.shots else {}
    model, tokenizer, _ = load_base(base_spec, dtype=dtype)
    model.to(where)
    results = []
    for subject, weights in loaded:
        adapter = lora_weights(model, *weights) if weights is not None else None
        with applied(model, adapter):
            for bench in benches:
                if subject.benches is not None and bench.name not in subject.benches:
                    continue
                docs, sha = data[bench.name]
                progress = (lambda done, total, b=bench.name: on_progress(b, done, total)) if on_progress else None
                settings = prompt or PromptSettings()
                if subject.instruction:
                    settings = replace(settings, instruction=subject.instruction)
                result = evaluate(
                    model,
                    tokenizer,
                    bench,
                    docs,
                    sha,
                    limit,
                    batch_size,
                    progress,
                    protocol,
                    settings,
                    pools.get(bench.name),
                )
                results.append((subject, result))
                if on_result:
                    on_result(subject, result)
    return results


def lm_eval_shaped(rows: list[dict], base: str, limit: int | None, batch_size: int, dtype: str) -> dict:
    """Results in the shape of lm-eval's results file: {"results": {task: {"acc,none": v, "acc_stderr,none": e}}},
    one task key per subject and bench ("bench" for the base model, "bench@subject" for an adapter)."""
    results: dict[str, dict] = {}
    for r in rows:
        key = r["bench"] if r["subject"] == "base" else f"{r['bench']}@{r['subject']}"
        entry = results.setdefault(key, {"alias": key, "samples": r["n"], "protocol": r["protocol"]})
        entry[f"{r['metric']},none"] = r["value"]
        entry[f"{r['metric']}_stderr,none"] = r["stderr"] if r["stderr"] == r["stderr"] else "N/A"
    return {
        "results": results,
        "config": {
            "model": "t2l",
            "model_args": f"base={base},dtype={dtype}",
            "batch_size": batch_size,
            "limit": limit,
        },
    }
