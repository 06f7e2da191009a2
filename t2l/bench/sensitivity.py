"""How much does a hypernetwork's adapter depend on the description it is given?

For each hypernetwork: the weight updates (B @ A of every target, flattened) of the adapters generated from the
benchmarks' own descriptions (three per bench) and from as many unrelated training-task descriptions (the ones
`t2l bench paper` uses as its control). Reported:

- spread: mean distance of an adapter's update from the mean update of all of them, relative to the mean's norm.
  Near 0, every description gets the same adapter and the description cannot matter.
- same bench: mean cosine between the deviations (update minus mean) of two descriptions of the same bench.
  Above 0, paraphrases of one task land near each other, i.e. the hypernetwork reads meaning.
- other bench: the same between descriptions of different benches.

    .venv/bin/python -m t2l.bench.sensitivity HYPERNET_DIR|default [...]
"""

import argparse
import itertools
from pathlib import Path

import torch
import torch.nn.functional as F

from t2l.hypernet_files import DEFAULT_HYPERNET_DIR
from t2l.eval.benches import BENCHES
from t2l.make import AdapterMaker
from t2l.bench.paper import PAPER_BENCHES, PaperSettings, unrelated_descriptions
from t2l.tasks.resolve import resolve_collection


def updates(maker: AdapterMaker, texts: list[str]) -> torch.Tensor:
    """[len(texts), all update entries]: B @ A of every adapted module, flattened."""
    with torch.no_grad():
        weights = maker.hypernet(maker.encoder.encode(texts).embeddings)
    return torch.cat([(b @ a).flatten(1) for a, b in weights.values()], 1)


def mean_cosine(rows: torch.Tensor, pairs) -> float:
    return torch.stack([F.cosine_similarity(rows[i], rows[j], dim=0) for i, j in pairs]).mean().item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hypernets", nargs="+", help="hypernetwork folders, or 'default'")
    args = ap.parse_args()

    texts = [d for b in PAPER_BENCHES for d in BENCHES[b].descriptions]
    bench_of = [b for b in PAPER_BENCHES for _ in BENCHES[b].descriptions]
    settings = PaperSettings(out=Path("."))
    unrelated = list(unrelated_descriptions(settings, resolve_collection(settings.tasks)).values())
    pairs = list(itertools.combinations(range(len(texts)), 2))
    same = [(i, j) for i, j in pairs if bench_of[i] == bench_of[j]]
    other = [(i, j) for i, j in pairs if bench_of[i] != bench_of[j]]

    print("| hypernet | spread (bench descriptions) | spread (unrelated) | same bench | other bench |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for spec in args.hypernets:
        maker = AdapterMaker(DEFAULT_HYPERNET_DIR if spec == "default" else Path(spec))
        bench, unrel = updates(maker, texts), updates(maker, unrelated)
        mean = torch.cat([bench, unrel]).mean(0)
        spread = {k: ((v - mean).norm(dim=1) / mean.norm()).mean().item() for k, v in (("b", bench), ("u", unrel))}
        dev = bench - mean
        print(
            f"| {spec} | {spread['b']:.3f} | {spread['u']:.3f} | {mean_cosine(dev, same):.3f} | "
            f"{mean_cosine(dev, other):.3f} |"
        )


if __name__ == "__main__":
    main()
