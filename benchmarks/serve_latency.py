"""Many users at once: aggregate tokens/s and time to first token of 1, 4 and 8 concurrent streaming requests over
4 adapters (3 described adapters and the base, 64 tokens each, the end token biased away so every answer runs to
its budget, temperature 0), for t2l's batching engine, the same
engine with --max-batch 1 (one answer at a time, as t2l served before batching), and vLLM's CPU build when a vLLM
environment is given; plus a lone request in-process (as `t2l run` makes it) and a `t2l:<description>` request.

    .venv/bin/python benchmarks/serve_latency.py [--max-tokens 64] [--vllm .venv-vllm] [--threads N]

Each engine is measured in the same run on the same machine. t2l's servers run as `t2l serve` processes on free
localhost ports and are called over HTTP with streaming (server-sent events) from threads of this one, as clients
would;
vLLM runs as `t2l serve --engine vllm` from the vLLM environment, on the same base folder, with t2l's LoRA
resolver handing it the same registered adapters (by id) as PEFT folders. Answers are greedy, so every engine
generates the same tokens per request (checked for t2l's two; vLLM's are compared and counted).
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

PROMPTS = [
    "Write one sentence about the weather today.",
    "Describe a cat in a few words.",
    "What should I cook tonight?",
    "Tell me about the sea.",
    "Give me a tip for learning to draw.",
    "Why is the sky blue?",
    "Name three rivers and say where they are.",
    "Write a short greeting.",
]
DESCRIPTIONS = [
    "answer in upper case letters only",
    "translate the user's sentence into French",
    "answer in exactly one short sentence",
]


END_BIAS: dict[str, float] = {}  # the end token's id -> -100: every answer runs to max_tokens (set in main)


def stream(url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int, str]:
    """(seconds to the first token, seconds in all, tokens, text) of one streamed chat completion."""
    import httpx

    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": END_BIAS,
    }
    start, first, tokens, text = time.perf_counter(), None, 0, ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=900) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and (piece := chunk["choices"][0]["delta"].get("content")):
                text += piece
                first = first if first is not None else time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return first if first is not None else float("nan"), time.perf_counter() - start, tokens, text


def repeated(url: str, models: list[str], users: int, max_tokens: int, repeats: int) -> dict:
    """`concurrent` `repeats` times: the median of each number, and the range of the aggregate tokens/s (on a shared
    machine one run can be far off the next)."""
    runs = [concurrent(url, models, users, max_tokens) for _ in range(repeats)]
    rates = [r["tokens_per_s"] for r in runs]
    return {
        "tokens_per_s": statistics.median(rates),
        "range": (min(rates), max(rates)),
        "first_median": statistics.median(r["first_median"] for r in runs),
        "first_worst": statistics.median(r["first_worst"] for r in runs),
        "texts": runs[0]["texts"],
        "same": all(r["texts"] == runs[0]["texts"] for r in runs),
    }


def concurrent(url: str, models: list[str], users: int, max_tokens: int) -> dict:
    """`users` requests at once, user i asking models[i % 4] PROMPTS[i]."""
    results: list = [None] * users

    def one(i: int):
        results[i] = stream(url, models[i % len(models)], PROMPTS[i % len(PROMPTS)], max_tokens)

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    firsts = [r[0] for r in results]
    return {
        "tokens_per_s": sum(r[2] for r in results) / wall,
        "first_median": statistics.median(firsts),
        "first_worst": max(firsts),
        "texts": [r[3] for r in results],
    }


def start_vllm(env_dir: Path, port: int) -> subprocess.Popen:
    """`t2l serve --engine vllm` from the vLLM environment: vLLM on the same base folder, t2l's resolver giving it
    the same registered adapters by id, as a user runs it."""
    proc = subprocess.Popen(
        [str(env_dir / "bin" / "t2l"), "serve", "--engine", "vllm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return answering(proc, port, 900, "vLLM")


def start_t2l(max_batch: int, port: int, threads: int | None) -> subprocess.Popen:
    """`t2l serve` as its own process, as a user runs it (client threads here never share its interpreter)."""
    import sys

    cmd = [sys.executable, "-m", "t2l_cli", "serve", "--port", str(port), "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd + (["--threads", str(threads)] if threads else []), stderr=subprocess.DEVNULL)
    return answering(proc, port, 300, "t2l serve")


def answering(proc: subprocess.Popen, port: int, timeout_s: float, what: str) -> subprocess.Popen:
    """`proc` once its /health answers on `port`; killed, and an error, if it does not within `timeout_s`."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{what} did not start within {timeout_s / 60:.0f} minutes")


def prefill_seconds(engine, users: int) -> tuple[float, float]:
    """Seconds of one forward over 1 and over `users` of the prompts (left-padded into one batch), best of three."""
    import torch

    def once(n: int) -> float:
        ids = [engine.chat_ids([{"role": "user", "content": p}]) for p in (PROMPTS * users)[:n]]
        width = max(map(len, ids))
        pad = engine.tokenizer.pad_token_id
        batch = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            with torch.no_grad():
                engine.model(input_ids=batch, attention_mask=mask)
            best = min(best, time.perf_counter() - start)
        return best

    return once(1), once(users)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--users", default="1,4,8")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each row; the table gives medians")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for t2l (default: torch's own)")
    ap.add_argument(
        "--vllm",
        default=None,
        type=Path,
        help="a vLLM environment with t2l in it (bash setup.sh --vllm makes .venv-vllm)",
    )
    args = ap.parse_args()
    os.environ.setdefault("T2L_HOME", tempfile.mkdtemp(prefix="t2l-bench-serve-"))

    import httpx

    from t2l.chat import Engine, Sampling
    from t2l_cli.actions import use
    from t2l_cli.actions.common import open_registry
    from t2l_cli.server.background import free_port

    from transformers import AutoTokenizer

    from t2l.base import base_folder

    k, users = args.max_tokens, [int(u) for u in args.users.split(",")]
    end = AutoTokenizer.from_pretrained(base_folder()[0]).eos_token_id
    END_BIAS[str(end)] = -100  # the same work for every engine: no answer ends early
    rows, texts, ids = [], {}, []
    for label, max_batch in (("t2l, batching (--max-batch 8)", 8), ("t2l, --max-batch 1", 1)):
        port = free_port()
        proc = start_t2l(max_batch, port, args.threads)
        url = f"http://127.0.0.1:{port}"
        try:
            if not ids:  # the same three adapters for every engine
                ids = [
                    httpx.post(f"{url}/v1/adapters", json={"description": d}, timeout=600).json()["id"]
                    for d in DESCRIPTIONS
                ]
            models = ["base", *ids]
            stream(url, models[1], PROMPTS[0], 4)  # warm-up
            for n in users:
                r = repeated(url, models, n, k, args.repeats)
                texts[(label, n)] = r["texts"]
                rows.append((label, n, r["tokens_per_s"], r["range"], r["first_median"], r["first_worst"]))
            if max_batch == 8:
                made = time.perf_counter()
                first, _, tokens, _ = stream(url, f"t2l:{DESCRIPTIONS[0]}, once more", PROMPTS[0], k)
                rate = tokens / (time.perf_counter() - made)
                rows.append(("t2l, one t2l:<description> request (make + answer)", 1, rate, None, first, first))
        finally:
            proc.terminate()
            proc.wait(60)
    # a lone request in-process, as `t2l run` makes it (no HTTP)
    engine = Engine.load("smollm2-135m")
    reg = open_registry()
    adapter = use.load_chosen(engine, use.chosen_row(reg, reg.get_adapter(ids[0])))
    end = tuple((int(i), b) for i, b in END_BIAS.items())
    lone = engine.generate(
        engine.chat_ids([{"role": "user", "content": PROMPTS[0]}]), Sampling(k, 0, logit_bias=end), adapter
    )
    start = time.perf_counter()
    lone.run()
    rows.insert(
        0,
        (
            "t2l, one request in-process (as `t2l run`)",
            1,
            lone.completion_tokens / (time.perf_counter() - start),
            None,
            lone.first_token_s,
            lone.first_token_s,
        ),
    )
    floor = prefill_seconds(engine, max(users))
    same = all(texts[("t2l, batching (--max-batch 8)", n)] == texts[("t2l, --max-batch 1", n)] for n in users)
    vllm_note = "vLLM not measured (no --vllm environment given)"
    if args.vllm:
        port = free_port()
        proc = start_vllm(args.vllm, port)
        try:
            vurl, agree = f"http://127.0.0.1:{port}", 0
            served = httpx.get(f"{vurl}/v1/models").json()["data"][0]["id"]
            vmodels = [served, *ids]
            for model in vmodels:  # warm-up: the resolver exports each adapter once, vLLM loads it
                stream(vurl, model, PROMPTS[0], 4)
            for n in users:
                r = repeated(vurl, vmodels, n, k, args.repeats)
                agree += sum(a == b for a, b in zip(r["texts"], texts[("t2l, batching (--max-batch 8)", n)]))
                rows.append(
                    (
                        "vLLM CPU (t2l serve --engine vllm)",
                        n,
                        r["tokens_per_s"],
                        r["range"],
                        r["first_median"],
                        r["first_worst"],
                    )
                )
            vllm_note = f"vLLM's answers equal t2l's on {agree} of {sum(users)} requests"
        finally:
            proc.terminate()
            proc.wait(60)

    import torch

    print(
        f"base {engine.ref.name}, {k} new tokens (greedy), user i asks adapter i % 4 (3 described adapters and "
        f"the base); torch threads {args.threads or torch.get_num_threads()}\n"
    )
    print(f"medians of {args.repeats} runs (the range of the aggregate tokens/s beside it)\n")
    print("| engine | concurrent requests | aggregate tokens/s | first token, median s | first token, worst s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, n, rate, spread, med, worst in rows:
        shown = f"{rate:.1f}" + (f" ({spread[0]:.1f}-{spread[1]:.1f})" if spread else "")
        print(f"| {label} | {n} | {shown} | {med:.2f} | {worst:.2f} |")
    print(f"\nbatched answers equal one-at-a-time answers: {same}; {vllm_note}")
    print(
        f"one forward over the prompts alone (prefill, no adapter, in-process): 1 prompt {floor[0]:.2f} s, "
        f"{max(users)} prompts together {floor[1]:.2f} s, the least any engine's worst first token can be when "
        f"{max(users)} arrive at once on this machine"
    )


if __name__ == "__main__":
    main()
