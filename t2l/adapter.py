"""Adapter files in PEFT's layout: one .safetensors (config in its metadata) or a PEFT folder.

Both forms hold the same tensors under PEFT key names
(`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`); the folder adds `adapter_config.json` and a
README model card, so `PeftModel.from_pretrained(base, folder)` loads it as is. Writing either form is
`t2l.export`'s.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from t2l.errors import T2LError
from t2l.locate import ModelRef

PEFT_WEIGHTS, PEFT_CONFIG = "adapter_model.safetensors", "adapter_config.json"
TRAINED = "adapter.safetensors"  # what `t2l train --recipe lora|mt-lora` writes in RUN/result


@dataclass
class AdapterInfo:
    """What an adapter is: its LoRA settings and where it came from."""

    description: str
    rank: int
    alpha: float
    target_modules: list[str]
    base: ModelRef
    base_spec: str
    dropout: float = 0.0
    truncated: bool = False
    hypernet: dict = field(default_factory=dict)  # sha256, variant, recipe of the hypernet that made it
    encoder: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)  # count and sha256 of the examples it was made from, if any

    def to_json(self) -> dict:
        d = asdict(self)
        d["base"] = {**self.base.to_dict(), "spec": self.base_spec}
        del d["base_spec"]
        if not self.examples:
            del d["examples"]  # an adapter made from words alone keeps the bytes (and sha256) it always had
        return d

    @classmethod
    def from_json(cls, d: dict) -> "AdapterInfo":
        d = dict(d)
        base = d.pop("base")
        return cls(base=ModelRef.from_dict(base), base_spec=base.get("spec", base["name"]), **d)

    def peft_config(self) -> dict:
        """adapter_config.json as PEFT writes it for a LoRA on a causal LM (PEFT fills the rest with defaults)."""
        return {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": self.base_spec,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": list(self.target_modules),
            "bias": "none",
            "fan_in_fan_out": False,
            "inference_mode": True,
        }

    def registry_fields(self) -> dict:
        """The columns of the registry's adapter table (besides name, file and tags)."""
        return dict(
            description=self.description,
            truncated=self.truncated,
            base_name=self.base.name,
            base_sha256=self.base.sha256,
            rank=self.rank,
            alpha=self.alpha,
            targets=list(self.target_modules),
            examples_count=self.examples.get("count", 0),
            examples_sha256=self.examples.get("sha256"),
        )


def adapter_bytes(tensors: dict, info: AdapterInfo) -> bytes:
    """The single-file form, in memory (the registry stores it content-addressed)."""
    from safetensors.torch import save

    meta = {"format": "pt", "t2l": json.dumps(info.to_json()), "peft_config": json.dumps(info.peft_config())}
    return canonical(save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def canonical(raw: bytes) -> bytes:
    """safetensors bytes with the header's metadata in sorted order. `save` writes metadata in hash-map order, which
    changes from process to process; sorted, the same adapter always has the same bytes and the same sha256, so the
    registry stores it once. Tensor offsets are relative to the data section, so a re-written header moves nothing."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def is_folder_form(path: Path) -> bool:
    return Path(path).suffix != ".safetensors"


def weights_file(path: Path) -> Path:
    """The safetensors file of an adapter in either form."""
    path = Path(path)
    weights = path / PEFT_WEIGHTS if path.is_dir() else path
    if path.is_dir() and not weights.is_file() and (path / TRAINED).is_file():
        weights = path / TRAINED
    if not weights.is_file():
        raise T2LError(
            f"no adapter at {path} (expected a .safetensors file, or a folder with {PEFT_WEIGHTS} or a "
            f"training run's {TRAINED})"
        )
    return weights


def read_adapter(path: Path) -> tuple[dict, AdapterInfo | None, dict]:
    """(tensors, t2l info or None for a foreign PEFT adapter, PEFT config) from either form."""
    path = Path(path)
    meta, tensors = _open(weights_file(path), with_tensors=True)
    if path.is_dir() and (path / PEFT_CONFIG).is_file():
        peft_config = json.loads((path / PEFT_CONFIG).read_text())
    elif "peft_config" in meta:
        peft_config = json.loads(meta["peft_config"])
    else:
        raise T2LError(f"{weights_file(path)} carries no adapter config; it was not written by t2l or PEFT")
    return tensors, _info(meta), peft_config


def read_info(path: Path) -> AdapterInfo | None:
    """The t2l info of either form (None for a foreign PEFT adapter), without loading the tensors."""
    return _info(_open(weights_file(path), with_tensors=False)[0])


def _open(weights: Path, with_tensors: bool) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(weights, framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError) as e:
        raise T2LError(
            f"{weights} is not a readable safetensors file ({e}); it may be truncated or corrupted"
        ) from None


def _info(meta: dict) -> AdapterInfo | None:
    return AdapterInfo.from_json(json.loads(meta["t2l"])) if "t2l" in meta else None


def load_adapter(model, path: Path, adapter_name: str = "default"):
    """Wrap `model` in a PeftModel carrying the adapter at `path` (either form); shapes are checked first."""
    from peft import LoraConfig, PeftModel, set_peft_model_state_dict

    tensors, _, peft_config = read_adapter(path)
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in peft_config.items() if k in known})
    check_shapes(model, tensors)
    peft_model = PeftModel(model, config, adapter_name=adapter_name)
    # peft annotates it `-> namedtuple` (the function, not a type), so it is typed here by hand
    result: Any = set_peft_model_state_dict(peft_model, tensors, adapter_name=adapter_name)
    if result.unexpected_keys:
        raise T2LError(
            f"{path} has weights this model cannot take ({result.unexpected_keys[0]}, ...); "
            "was it made for another base model?"
        )
    return peft_model.eval()


def check_shapes(model, tensors: dict) -> None:
    """Every key names a Linear in `model` and every shape fits it, else one error naming the first misfit."""
    for key, t in tensors.items():
        module_name, which = _split_key(key)
        try:
            mod = model.get_submodule(module_name)
        except AttributeError:
            raise T2LError(
                f"adapter key {key} names no module of this base model; it was made for another base"
            ) from None
        want = (t.shape[0], mod.in_features) if which == "A" else (mod.out_features, t.shape[1])
        if tuple(t.shape) != want:
            raise T2LError(
                f"adapter weight {key} has shape {tuple(t.shape)}, the base model needs {want}; "
                "it was made for another base model"
            )


def _split_key(key: str) -> tuple[str, str]:
    prefix, suffix = "base_model.model.", (".lora_A.weight", ".lora_B.weight")
    if not key.startswith(prefix) or not key.endswith(suffix):
        raise T2LError(f"unexpected adapter key {key!r}: not a PEFT LoRA weight")
    return key[len(prefix) : -len(".lora_A.weight")], key[-8]
