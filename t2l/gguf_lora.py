"""LoRA adapters as GGUF for llama.cpp and ollama, in the layout llama.cpp's `convert_lora_to_gguf.py` writes.

The file says `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` and the base's
`general.architecture`; each adapted Linear of the base becomes two f32 tensors named after the base's own GGUF
tensor (`blk.N.attn_q.weight.lora_a` of shape (rank, in) and `.lora_b` of shape (out, rank), PEFT's orientation,
which is what llama.cpp checks against the base tensor). Where llama.cpp's converter permutes the base's q and k rows
for its rotary layout (llama, granite), lora_b's rows are permuted the same way, so B @ A stays the delta of the
weight llama.cpp actually holds.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from t2l.errors import T2LError

PREFIX, A_SUFFIX, B_SUFFIX = "base_model.model.", ".lora_A.weight", ".lora_B.weight"

# HF architecture -> (llama.cpp architecture, q/k rows permuted), as llama.cpp's converter registers them
HF_ARCHS = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "GraniteForCausalLM": ("granite", True),
    "Qwen2ForCausalLM": ("qwen2", False),
    "Qwen3ForCausalLM": ("qwen3", False),
    "GemmaForCausalLM": ("gemma", False),
    "Gemma2ForCausalLM": ("gemma2", False),
    "Gemma3ForCausalLM": ("gemma3", False),
    "Phi3ForCausalLM": ("phi3", False),
    "Olmo2ForCausalLM": ("olmo2", False),
}
PERMUTED = {arch for arch, permuted in HF_ARCHS.values() if permuted}


@dataclass
class BaseLayout:
    """What the GGUF names and rows of an adapter depend on: the base's llama.cpp architecture and its heads."""

    arch: str
    layers: int
    heads: int
    kv_heads: int
    shapes: dict | None = None  # llama.cpp tensor name -> (out, in), when the base is a GGUF file we can read


def layout_from_gguf(path: Path) -> BaseLayout:
    """The layout of a base that is itself a GGUF (the embedded SmolLM2, or a .gguf file)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str, default=None):
        field = reader.get_field(key)
        return default if field is None else field.contents()

    arch = value("general.architecture")
    if arch is None:
        raise T2LError(f"{path} has no general.architecture; it is not a llama.cpp model GGUF")
    heads = int(value(f"{arch}.attention.head_count", 0))
    shapes = {t.name: (int(t.shape[1]), int(t.shape[0])) for t in reader.tensors if len(t.shape) == 2}
    return BaseLayout(
        arch, int(value(f"{arch}.block_count", 0)), heads, int(value(f"{arch}.attention.head_count_kv", heads)), shapes
    )


def layout_from_config(config: dict) -> BaseLayout:
    """The layout of an HF base from its config.json."""
    names = config.get("architectures") or [config.get("model_type", "?")]
    if names[0] not in HF_ARCHS:
        raise T2LError(
            f"cannot write a llama.cpp adapter for a {names[0]} base: t2l knows the llama.cpp layout of "
            f"{', '.join(sorted(HF_ARCHS))} only; export it as NAME.safetensors or a PEFT folder instead"
        )
    heads = int(config["num_attention_heads"])
    return BaseLayout(
        HF_ARCHS[names[0]][0], int(config["num_hidden_layers"]), heads, int(config.get("num_key_value_heads") or heads)
    )


def base_layout(spec: str) -> BaseLayout:
    """The layout of the base an adapter was made for, from its GGUF or its config.json (no weights loaded)."""
    from t2l.base import _folder_and_ref, _gguf_file

    gguf = _gguf_file(spec)
    if gguf:
        return layout_from_gguf(gguf[1])
    folder = _folder_and_ref(spec)[0]
    return layout_from_config(json.loads((folder / "config.json").read_text()))


def _permute_rows(b, heads: int):
    """llama.cpp's q/k permutation (its converter's `permute`) applied to the rows of lora_b."""
    out = b.shape[0]
    return b.reshape(heads, 2, out // heads // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def gguf_tensors(tensors: dict, layout: BaseLayout) -> dict:
    """PEFT LoRA tensors -> {llama.cpp name: float32 numpy array}, checked against the base when its shapes are
    known."""
    import gguf

    known = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    if layout.arch not in known or layout.arch not in {a for a, _ in HF_ARCHS.values()}:
        raise T2LError(
            f"cannot write a llama.cpp adapter for a base of llama.cpp architecture {layout.arch!r}: "
            f"t2l knows {', '.join(sorted({a for a, _ in HF_ARCHS.values()}))} only; export it as "
            "NAME.safetensors or a PEFT folder instead"
        )
    names = gguf.get_tensor_name_map(known[layout.arch], layout.layers)
    pairs: dict[str, dict] = {}
    for key, t in tensors.items():
        if not key.startswith(PREFIX) or not key.endswith((A_SUFFIX, B_SUFFIX)):
            raise T2LError(f"unexpected adapter key {key!r}: not a PEFT LoRA weight")
        module = key[len(PREFIX) : -len(A_SUFFIX)]
        pairs.setdefault(module, {})[key[-8]] = t.detach().float().cpu().numpy()
    out = {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            missing = ({"A", "B"} - set(ab)).pop()
            raise T2LError(f"the adapter has no lora_{missing} for {module}; it is damaged: make it again")
        base = names.get_name(module)
        if base is None or not base.startswith("blk."):
            short = module.rsplit(".", 1)[-1]
            raise T2LError(
                f"llama.cpp's {layout.arch} architecture has no tensor for the adapted module {short} "
                f"({module}); make the adapter with other target modules (e.g. q_proj, v_proj) or "
                "export it as NAME.safetensors"
            )
        a, b = ab["A"], ab["B"]
        if layout.arch in PERMUTED and base.endswith((".attn_q", ".attn_k")):
            b = _permute_rows(b, layout.heads if base.endswith(".attn_q") else layout.kv_heads)
        name = f"{base}.weight"
        want = layout.shapes.get(name) if layout.shapes is not None else None
        if layout.shapes is not None and want != (b.shape[0], a.shape[1]):
            found = "no such tensor" if want is None else f"shape {want}"
            raise T2LError(
                f"the adapter's {module} is ({b.shape[0]}, {a.shape[1]}) but the base GGUF has {found} "
                f"for {name}; the adapter was made for another base"
            )
        out[f"{name}.lora_a"], out[f"{name}.lora_b"] = a, b
    if not out:
        raise T2LError("the adapter holds no LoRA weights; nothing to write")
    return out


def write_gguf_lora(tensors: dict, alpha: float, layout: BaseLayout, path: Path, name: str | None = None) -> Path:
    """Write the adapter as one GGUF, whole or not at all (a temporary name beside `path`, then a rename)."""
    import gguf
    import numpy as np

    from t2l.files import _temp_beside

    arrays = gguf_tensors(tensors, layout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        writer = gguf.GGUFWriter(tmp, layout.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        if name:
            writer.add_name(name)
        for tensor_name, array in arrays.items():
            writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
