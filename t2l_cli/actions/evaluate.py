"""The action of `t2l eval`: score subjects on benches and store every finished bench in the registry."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from registry import Registry
from t2l.errors import T2LError
from t2l_cli.actions.common import (
    Warn,
    adapter_path,
    base_of,
    ignore,
    make_and_store,
    open_registry,
    registered_hypernet,
)


@dataclass(frozen=True)
class EvalSettings:
    """How `t2l eval` scores, besides what it scores."""

    limit: int | None = None
    batch_size: int = 16
    dtype: str = "float32"
    device: str = "auto"
    data_dir: Path | None = None
    from_hub: bool = False
    protocol: str = "lm-eval"
    shots: int = 0
    chat_template: bool = False


def evaluate(
    refs: list[str],
    bench: str,
    settings: EvalSettings,
    base: str | None = None,
    describe: bool = False,
    hypernet: str = "default",
    output: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_warning: Warn = ignore,
) -> list[dict]:
    """Score the subjects (refs, and with `describe` adapters made from each bench's own descriptions) on the
    benches; every finished bench is stored in the registry at once. One row per subject, bench and metric; written
    lm-eval-shaped to `output` when given."""
    from t2l.eval.benches import select
    from t2l.eval.prompts import PromptSettings
    from t2l.device import resolve_device
    from t2l.eval.run import check_settings, run_eval
    from t2l.files import check_writable

    check_settings(settings.limit, settings.protocol, settings.shots, settings.batch_size, settings.dtype)
    if output is not None:
        check_writable(output, "--output")  # before the run, not after its scores are stored
    resolve_device(settings.device)  # a missing GPU is said before any model loads
    benches = select(bench)
    reg = open_registry()
    reg.require_writable()  # scores are stored as each bench finishes
    subjects = _subjects(reg, refs)
    if describe:
        subjects += _described_subjects(reg, benches, hypernet, on_warning)
    if not subjects:
        raise T2LError("nothing to evaluate: name 'base', adapters, or pass --describe")
    base = base or base_of([s for s, _ in subjects])
    rows: list[dict] = []
    run_eval(
        [s for s, _ in subjects],
        benches,
        base,
        limit=settings.limit,
        batch_size=settings.batch_size,
        dtype=settings.dtype,
        data_dir=settings.data_dir,
        from_hub=settings.from_hub,
        protocol=settings.protocol,
        prompt=PromptSettings(shots=settings.shots, chat_template=settings.chat_template),
        device=settings.device,
        on_progress=on_progress,
        on_result=_score_recorder(reg, {s.label: key for s, key in subjects}, base, settings, rows),
    )
    if output is not None:
        from t2l.eval.run import lm_eval_shaped
        from t2l.files import write_text_atomic

        write_text_atomic(
            output,
            json.dumps(lm_eval_shaped(rows, base, settings.limit, settings.batch_size, settings.dtype), indent=2),
        )
    return rows


def _subjects(reg: Registry, refs: list[str]) -> list[tuple[object, tuple[str | None, str]]]:
    """(eval Subject, (adapter id or None, the subject key scores are stored under)) for each ref: 'base', an
    adapter file, folder or Hub repo (keyed by its weights' sha256), or a registered adapter."""
    from t2l.adapter import weights_file
    from t2l.eval.run import Subject
    from t2l.hashing import sha256_file

    subjects = []
    for ref in refs:
        if ref == "base":
            subjects.append((Subject("base"), (None, "base")))
            continue
        path, adapter_id = adapter_path(reg, ref)
        if adapter_id is None:
            subjects.append((Subject(ref, path), (None, f"file:{sha256_file(weights_file(path))}")))
        else:
            row = reg.get_adapter(adapter_id)
            subjects.append((Subject(row.name or row.id[:8], path), (row.id, row.id)))
    return subjects


def _described_subjects(reg: Registry, benches, hypernet: str, on_warning: Warn) -> list:
    """Zero-shot T2L: an adapter made and stored from each of a bench's own descriptions, evaluated on that bench."""
    from t2l.eval.run import Subject
    from t2l.make import AdapterMaker

    hn_row = registered_hypernet(reg, hypernet)
    maker = AdapterMaker(reg.hypernet_dir(hn_row))
    subjects = []
    for b in benches:
        made = make_and_store(
            reg,
            maker,
            hn_row,
            list(b.descriptions),
            [None] * len(b.descriptions),
            ["describe", b.name],
            False,
            on_warning,
        )
        subjects += [
            (Subject(f"t2l:{b.name}#{i}", reg.stored_path(row.sha256), [b.name]), (row.id, row.id))
            for i, (row, _) in enumerate(made, 1)
        ]  # stored just now from these very bytes
    return subjects


def _score_recorder(reg: Registry, keys: dict, base: str, settings: EvalSettings, rows: list[dict]):
    """An on_result handler (`keys`: subject label -> (adapter id, subject key)): stores each finished bench of a
    subject in the registry (one transaction) and adds its metrics to `rows`."""
    import t2l
    from t2l.base import identify_base

    base_ref = identify_base(base)

    def store(subject, result):
        adapter_id, subject_key = keys[subject.label]
        reg.add_eval(
            result.metrics,
            adapter_id=adapter_id,
            subject=subject_key,
            base_name=base_ref.name,
            base_sha256=base_ref.sha256,
            bench=result.bench,
            split=result.split,
            n=result.n,
            protocol=result.protocol,
            data_sha256=result.data_sha256,
            limit=result.limit,
            dtype=settings.dtype,
            batch_size=settings.batch_size,
            t2l_version=t2l.__version__,
            shots=settings.shots,
        )
        rows.extend(
            {
                "subject": subject.label,
                "bench": result.bench,
                "split": result.split,
                "metric": metric,
                "value": value,
                "stderr": stderr,
                "n": result.n,
                "limit": result.limit,
                "protocol": result.protocol,
            }
            for metric, (value, stderr) in result.metrics.items()
        )

    return store
