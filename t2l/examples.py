"""Input/output examples an adapter is made from, besides or instead of its description.

A hypernetwork trained with examples (`HypernetConfig.examples` > 0) reads them through the description encoder, either
each example as one short text with the average of those embeddings beside the description's ("mean"), or the
description and the examples as one text ("text"): the examples carry what words leave out (the answer's exact
format, the label set, the language) without spending the prompt on them at every call.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from t2l.errors import T2LError

INPUT_LIMIT = 2000  # characters of one example's input or output: the encoder's window is far shorter anyway


@dataclass(frozen=True)
class Shot:
    """One example of the task: what the model is given and what it should answer."""

    input: str
    output: str


def example_text(shot: Shot) -> str:
    """How an example reaches the encoder, in training and at inference alike."""
    return f"Input: {shot.input}\nOutput: {shot.output}"


def conditioning_text(description: str, shots: list[Shot]) -> str:
    """A "text" hypernetwork's one input: the description (if any) and then each example, a blank line apart; the
    encoder reads it from the start, so a window too short for every example keeps the description."""
    return "\n\n".join([description] * bool(description) + [example_text(s) for s in shots])


def examples_sha256(shots: list[Shot]) -> str:
    """The identity of a set of examples, as the registry stores it (order matters: it is the order given)."""
    text = json.dumps([[s.input, s.output] for s in shots], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_shots(rows: list, where: str) -> list[Shot]:
    """Examples from JSON values: each an object with string fields "input" and "output"."""
    shots = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise T2LError(
                f"{where}: example {i} is a JSON {type(row).__name__}, not an object; write "
                '{"input": "...", "output": "..."}'
            )
        missing = [k for k in ("input", "output") if not isinstance(row.get(k), str)]
        if missing:
            raise T2LError(
                f'{where}: example {i} has no string {missing[0]!r}; write {{"input": "...", "output": "..."}}'
            )
        inp, out = row["input"].strip(), row["output"].strip()
        if not inp or not out:
            raise T2LError(f"{where}: example {i} has an empty {'input' if not inp else 'output'}; give both")
        if max(len(inp), len(out)) > INPUT_LIMIT:
            raise T2LError(f"{where}: example {i} is longer than {INPUT_LIMIT} characters; shorten it")
        shots.append(Shot(inp, out))
    return shots


def read_examples(path: Path) -> list[Shot]:
    """Examples from a JSONL file: one {"input": ..., "output": ...} object per non-blank line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise T2LError(f"cannot read examples from {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise T2LError(f"{path} is not UTF-8 text; save the examples as UTF-8 JSON lines") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise T2LError(
                    f'{path} line {n} is not JSON ({e.msg}); write one {{"input": "...", "output": "..."}} per line'
                ) from None
    if not rows:
        raise T2LError(f'{path} holds no examples; write one {{"input": "...", "output": "..."}} per line')
    return parse_shots(rows, str(path))


def check_count(shots: list[Shot], most: int, hypernet: str) -> None:
    """Refuse examples a hypernetwork cannot read, or more than it was trained with."""
    if shots and not most:
        raise T2LError(
            f"hypernetwork {hypernet} reads descriptions only; make adapters from examples with one "
            "trained on them (`t2l train --recipe sft-examples`)"
        )
    if len(shots) > most:
        raise T2LError(
            f"{len(shots)} examples given; hypernetwork {hypernet} was trained with at most {most}: "
            f"give {most} or fewer"
        )


def mean_embedding(encoder, groups: list[list[Shot]]):
    """[len(groups), dim]: each group's mean example embedding, zeros for a group without examples (one encoder
    pass over every example of every group)."""
    import torch

    texts = [example_text(s) for g in groups for s in g]
    flat = encoder.encode(texts).embeddings if texts else torch.zeros(0, encoder.dim)
    out = torch.zeros(len(groups), encoder.dim, dtype=flat.dtype)
    for i, part in enumerate(flat.split([len(g) for g in groups])):
        if len(part):
            out[i] = part.mean(0)
    return out
