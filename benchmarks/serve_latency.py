"""What answering through `t2l serve` costs: time to first token and tokens/s for base and adapter requests, the
cost of switching adapters between requests, and of a `t2l:<description>` request (make the adapter, then answer),
beside the same answers generated in-process as `t2l run` does (t2l.chat.Engine, no HTTP).

    .venv/bin/python benchmarks/serve_latency.py [--repeats 5] [--max-tokens 32] [--base B] [--hypernet H]

The server runs on a background thread of this process on a free localhost port and is called over HTTP with
streaming (server-sent events), as a client would. Answers are greedy, so every repeat generates the same tokens;
tokens/s counts the tokens after the first over the time after the first (the decoding rate).
"""

import argparse
import json
import os
import statistics
import tempfile
import time

PROMPT = "Write one sentence about the weather today."
DESCRIPTIONS = ["answer in upper case letters only", "translate the user's sentence into French"]


def stream(url: str, model: str, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, seconds in all, tokens) of one streamed chat completion."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    start, first, tokens = time.perf_counter(), None, 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return first if first is not None else float("nan"), time.perf_counter() - start, tokens


def in_process(engine, adapter, max_tokens: int) -> tuple[float, float, int]:
    from t2l.chat import Sampling

    generation = engine.generate(engine.chat_ids([{"role": "user", "content": PROMPT}]),
                                 Sampling(max_tokens, temperature=0), adapter)
    start = time.perf_counter()
    generation.run()
    return generation.first_token_s, time.perf_counter() - start, generation.completion_tokens


def summary(label: str, runs: list[tuple[float, float, int]]) -> tuple:
    first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    tokens = statistics.median(r[2] for r in runs)
    rate = (tokens - 1) / (total - first) if tokens > 1 and total > first else float("nan")
    return label, 1000 * first, rate, 1000 * total, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--base", default=None, help="base model (default: the hypernetwork's)")
    ap.add_argument("--hypernet", default="default")
    args = ap.parse_args()
    os.environ.setdefault("T2L_HOME", tempfile.mkdtemp(prefix="t2l-bench-serve-"))

    import httpx

    from t2l_cli import actions
    from t2l_cli.server.api import create_app
    from t2l_cli.server.background import serving
    from t2l_cli.server.service import ServeSettings, Service

    service = Service(ServeSettings(base=args.base, hypernet=args.hypernet))
    n, k = args.repeats, args.max_tokens
    rows = []
    with serving(create_app(service)) as url:
        ids = [httpx.post(f"{url}/v1/adapters", json={"description": d}, timeout=600).json()["id"]
               for d in DESCRIPTIONS]
        adapter = actions.load_chosen(service.engine, service.resolve(ids[0]))
        for label, model, weights in (("base", "base", None), ("adapter", ids[0], adapter)):
            in_process(service.engine, weights, k)  # warm-up
            rows.append(summary(f"{label}, in-process (as `t2l run`)", [in_process(service.engine, weights, k)
                                                                       for _ in range(n)]))
            stream(url, model, k)
            rows.append(summary(f"{label}, served", [stream(url, model, k) for _ in range(n)]))
        rows.append(summary("adapter, served, switching A/B every request",
                            [stream(url, ids[i % 2], k) for i in range(2 * n)]))

        def cold(i: int):
            service.loaded.clear()  # read from the registry's file again, as for an adapter not used lately
            return stream(url, ids[i % 2], k)

        rows.append(summary("adapter, served, switching, not cached", [cold(i) for i in range(2 * n)]))
        rows.append(summary("t2l:<description>, served (make + answer)",
                            [stream(url, f"t2l:{DESCRIPTIONS[1]}, take {i}", k) for i in range(n)]))

    print(f"base {service.base_name}, {k} new tokens at most (greedy), median of {n} requests "
          f"({2 * n} for switching)\n")
    print("| request | time to first token, ms | tokens/s | total, ms | tokens |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, first, rate, total, tokens in rows:
        print(f"| {label} | {first:.0f} | {rate:.1f} | {total:.0f} | {tokens:.0f} |")


if __name__ == "__main__":
    main()
