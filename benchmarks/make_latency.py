"""How long generating an adapter takes on the embedded defaults, in-process and as a whole `t2l make` process.

Targets (issue #2): hypernet + encoder forward under 50 ms per adapter in-process; `t2l make` under 4 s warm.
The peer measured in the same run is one forward pass of the base model over the same description: what it
costs merely to read the description with the LM that the adapter is for.

    .venv/bin/python benchmarks/make_latency.py [--repeats 20]

The hypernetwork is the default configuration (variant M, rank 8, q_proj+v_proj) at its initial weights:
latency depends on the shapes, not on the training.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from t2l.base import load_base
from t2l.hypernet_files import save_hypernet
from t2l.config import HypernetConfig
from t2l.encoder import load_encoder
from t2l.make import AdapterMaker
from t2l.train.sft import build_hypernet

DESCRIPTIONS = [
    "classify sentiment of movie reviews",
    "translate English sentences to French",
    "solve grade school math word problems",
    "answer science questions with the letter of the choice",
    "summarise news articles in one sentence",
    "detect whether two sentences are paraphrases",
    "extract the names of people from a text",
    "write a python function from a docstring",
]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    work = Path(tempfile.mkdtemp(prefix="t2l-bench-"))
    os.environ.setdefault("T2L_HOME", str(work / "home"))

    base, tok, base_ref = load_base()
    enc = load_encoder()
    hn_dir = work / "hypernet"
    save_hypernet(
        build_hypernet(base, HypernetConfig()),
        hn_dir,
        base=base_ref,
        base_spec="smollm2-135m",
        encoder=enc.ref,
        encoder_spec=enc.ref.name,
        pooling=enc.pooling,
    )
    maker = AdapterMaker(hn_dir)

    rows = []
    for n in (1, 8):
        descs = DESCRIPTIONS[:n]
        ms = median_ms(lambda: maker.make(descs), args.repeats)
        ids = tok(descs, return_tensors="pt", padding=True)
        with torch.no_grad():
            peer = median_ms(lambda: base(**ids), args.repeats)
        rows.append((f"in-process, batch {n}", ms / n, peer / n, "< 50 ms"))

    cmd = [sys.executable, "-m", "t2l_cli", "make", DESCRIPTIONS[0], "--hypernet", str(hn_dir)]
    subprocess.run(cmd, check=True, capture_output=True)  # warm: registers the hypernet, fills caches
    for label, output in (("`t2l make` process, warm", False), ("`t2l make -o FILE` process, warm", True)):
        walls = []
        for i in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd + ["-o", str(work / f"out-{i}.safetensors")] * output, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        rows.append((label, 1000 * statistics.median(walls), float("nan"), "< 4000 ms"))

    print("| measurement | t2l ms / adapter | base forward over the description, ms | ratio | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, ms, peer, target in rows:
        ratio = f"{ms / peer:.2f}" if peer == peer else "-"
        peer_s = f"{peer:.1f}" if peer == peer else "-"
        print(f"| {name} | {ms:.1f} | {peer_s} | {ratio} | {target} |")
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
