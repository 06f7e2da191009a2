"""Comparing two adapters: descriptions word by word, settings side by side, and per-layer similarity of their
weight updates delta-W = scale * B @ A.

The Frobenius inner product of two LoRA updates needs no [out, in] matrix at all:
<B1 A1, B2 A2> = trace((B1^T B2) (A2 A1^T)), a product of two [r, r] matrices.
"""

import difflib
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from t2l.adapter import read_adapter
from t2l.errors import T2LError
from t2l.files import write_bytes_atomic


@dataclass
class LayerSimilarity:
    module: str
    layer: int
    cosine: float
    norm_a: float
    norm_b: float


@dataclass
class AdapterDiff:
    words: list[tuple[str, str]]  # (" ", word) kept, ("-", word) only in A, ("+", word) only in B
    settings: dict[str, tuple]  # name -> (A's, B's)
    layers: list[LayerSimilarity] = field(default_factory=list)
    overall_cosine: float = float("nan")


def _inner(a1, b1, s1, a2, b2, s2) -> float:
    return float(s1 * s2 * torch.trace((b1.T @ b2) @ (a2 @ a1.T)))


def _layer_of(key: str) -> tuple[str, int]:
    module = key.rsplit(".lora_", 1)[0]
    m = re.search(r"\.(\d+)\.", f".{module}.")
    return module.rsplit(".", 1)[-1], int(m.group(1)) if m else -1


def compare(path_a: Path, path_b: Path) -> AdapterDiff:
    ta, info_a, cfg_a = read_adapter(path_a)
    tb, info_b, cfg_b = read_adapter(path_b)
    desc_a, desc_b = (info.description if info else "" for info in (info_a, info_b))
    words = [(d[0], d[2:]) for d in difflib.ndiff(desc_a.split(), desc_b.split()) if d[0] in " +-"]
    settings = {
        "base": (
            info_a.base.name if info_a else cfg_a.get("base_model_name_or_path"),
            info_b.base.name if info_b else cfg_b.get("base_model_name_or_path"),
        ),
        "hypernet": (
            (info_a.hypernet.get("sha256") or "")[:12] if info_a else "",
            (info_b.hypernet.get("sha256") or "")[:12] if info_b else "",
        ),
        "rank": (cfg_a["r"], cfg_b["r"]),
        "alpha": (cfg_a["lora_alpha"], cfg_b["lora_alpha"]),
        "targets": (",".join(sorted(cfg_a["target_modules"])), ",".join(sorted(cfg_b["target_modules"]))),
    }
    if info_a and info_b and not info_a.base.same_weights(info_b.base):
        raise T2LError(
            f"{path_a} was made for base model {info_a.base.name}, {path_b} for {info_b.base.name}: "
            "weight updates of different bases cannot be compared; diff adapters of one base"
        )
    out = AdapterDiff(words, settings)
    shared = sorted(k for k in ta if k.endswith(".lora_A.weight") and k in tb)
    for key in shared:
        bkey = key.replace(".lora_A.", ".lora_B.")
        if ta[key].shape[1] != tb[key].shape[1] or ta[bkey].shape[0] != tb[bkey].shape[0]:
            raise T2LError(
                f"{key} has different shapes in the two adapters ({tuple(ta[bkey].shape[:1])}x"
                f"{tuple(ta[key].shape[1:])} vs {tuple(tb[bkey].shape[:1])}x{tuple(tb[key].shape[1:])}): "
                "they were made for different base models; diff adapters of one base"
            )
    if not shared:
        raise T2LError("the two adapters share no LoRA module; nothing to compare layer by layer")
    sa, sb = cfg_a["lora_alpha"] / cfg_a["r"], cfg_b["lora_alpha"] / cfg_b["r"]
    dot = na2 = nb2 = 0.0
    for key in shared:
        bkey = key.replace(".lora_A.", ".lora_B.")
        a1, b1, a2, b2 = (t.float() for t in (ta[key], ta[bkey], tb[key], tb[bkey]))
        ab, aa, bb = _inner(a1, b1, sa, a2, b2, sb), _inner(a1, b1, sa, a1, b1, sa), _inner(a2, b2, sb, a2, b2, sb)
        module, layer = _layer_of(key)
        cos = ab / math.sqrt(aa * bb) if aa > 0 and bb > 0 else float("nan")
        out.layers.append(LayerSimilarity(module, layer, cos, math.sqrt(max(aa, 0)), math.sqrt(max(bb, 0))))
        dot, na2, nb2 = dot + ab, na2 + aa, nb2 + bb
    out.layers.sort(key=lambda s: (s.module, s.layer))
    out.overall_cosine = dot / math.sqrt(na2 * nb2) if na2 > 0 and nb2 > 0 else float("nan")
    return out


def heatmap_png(diff: AdapterDiff, path: Path, cell: int = 14) -> Path:
    """Per-layer cosine similarity as a PNG: one row per module type, one column per layer, blue (-1) to red (+1).
    Written with zlib alone, so no plotting library is needed."""
    modules = sorted({s.module for s in diff.layers})
    layers = sorted({s.layer for s in diff.layers})
    value = {(s.module, s.layer): s.cosine for s in diff.layers}
    width, height = len(layers) * cell, len(modules) * cell
    rows = []
    for y in range(height):
        line = bytearray([0])  # filter type: none
        for x in range(width):
            v = value.get((modules[y // cell], layers[x // cell]), float("nan"))
            line += bytes(_color(v))
        rows.append(bytes(line))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
    return write_bytes_atomic(path, png)  # its folder made as for `eval --output`; never half a PNG


def _color(v: float) -> tuple[int, int, int]:
    if v != v:  # NaN: grey
        return (128, 128, 128)
    v = max(-1.0, min(1.0, v))
    if v >= 0:
        return (255, int(255 * (1 - v)), int(255 * (1 - v)))
    return (int(255 * (1 + v)), int(255 * (1 + v)), 255)
