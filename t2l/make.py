"""Descriptions in, adapters out: the encoder and the hypernetwork, never the base model."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from t2l.callbacks import Warn
from t2l.adapter import AdapterInfo, adapter_bytes
from t2l.base import identify_base
from t2l.hypernet_files import HypernetInfo, load_hypernet
from t2l.encoder import encoder_folder, DescriptionEncoder
from t2l.errors import T2LError
from t2l.text import require_utf8
from t2l.examples import Shot, check_count, conditioning_text, examples_sha256, mean_embedding


@dataclass
class GeneratedAdapter:
    tensors: dict  # PEFT key -> tensor
    info: AdapterInfo
    _bytes: bytes | None = field(default=None, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The adapter file's bytes, encoded once: the registry stores them and `make -o` writes them."""
        if self._bytes is None:
            self._bytes = adapter_bytes(self.tensors, self.info)
        return self._bytes


class AdapterMaker:
    """A loaded hypernetwork and its description encoder.

    `base` (optional) is checked against the base the hypernetwork was trained for; `encoder` overrides where the
    encoder is loaded from, and must hold the same weights as the one it was trained with.
    """

    def __init__(self, hypernet_dir: Path, *, base: str | None = None, encoder: str | None = None):
        self.hypernet, self.info = load_hypernet(hypernet_dir)
        if base is not None:
            ref = identify_base(base)
            if not ref.same_weights(self.info.base):
                raise T2LError(
                    f"the hypernetwork was trained for base model {self.info.base.name} "
                    f"(sha256 {self.info.base.sha256[:12]}), not {ref.name} (sha256 {ref.sha256[:12]}); "
                    "use a hypernetwork trained for this base"
                )
        folder, ref = encoder_folder(encoder or self.info.encoder_spec)
        if not ref.same_weights(self.info.encoder):
            raise T2LError(
                f"the description encoder {ref.name} is not the one the hypernetwork was trained with "
                f"({self.info.encoder.name}, sha256 {self.info.encoder.sha256[:12]})"
            )
        self.encoder = DescriptionEncoder(folder, ref, pooling=self.info.pooling, style=self.info.encoder_style)

    @property
    def max_examples(self) -> int:
        """Most examples an adapter can be made from (0: this hypernetwork reads descriptions only)."""
        return self.info.config.examples

    def make(
        self, descriptions: list[str], on_warning: Warn | None = None, examples: Sequence[Shot] = ()
    ) -> list[GeneratedAdapter]:
        """One adapter per description, all from one encoder pass and one hypernetwork forward; with `examples`,
        every adapter is made from them too, and with examples and no description, one adapter from the examples
        alone."""
        import torch

        check_count(list(examples), self.max_examples, self.info.sha256[:8])
        cleaned = [validate_description(d) for d in descriptions]
        if not cleaned and not examples:
            raise T2LError("no description given; pass one or more descriptions or --from-file FILE")
        text_mode = self.info.config.examples_as == "text" and bool(examples)
        if text_mode:  # the description and the examples as one text
            encoded = self.encoder.encode([conditioning_text(d, list(examples)) for d in cleaned or [""]])
            embeddings, truncated, cleaned = encoded.embeddings, encoded.truncated, cleaned or [""]
        elif cleaned:
            encoded = self.encoder.encode(cleaned)
            embeddings, truncated = encoded.embeddings, encoded.truncated
        else:  # examples alone: a zero description embedding, as in training
            embeddings, truncated, cleaned = torch.zeros(1, self.encoder.dim), [False], [""]
        inputs: tuple[torch.Tensor, ...] = (embeddings,)
        if self.max_examples and self.info.config.examples_as == "mean":
            inputs += (mean_embedding(self.encoder, [list(examples)]).expand(len(cleaned), -1),)
        with torch.no_grad():
            weights = self.hypernet(*inputs)
        shown = {"count": len(examples), "sha256": examples_sha256(list(examples))} if examples else {}
        out = []
        for i, (text, cut) in enumerate(zip(cleaned, truncated)):
            if cut and on_warning:
                what = f"description {i + 1} and the examples are" if text_mode else f"description {i + 1} is"
                on_warning(
                    f"{what} longer than the encoder's {self.encoder.max_length}-token window; only the "
                    "start was used (recorded as truncated)"
                )
            out.append(
                GeneratedAdapter(adapter_tensors(weights, self.info, i), adapter_info(self.info, text, cut, shown))
            )
        return out


def validate_description(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise T2LError('empty description: describe the task in words, e.g. "classify sentiment of movie reviews"')
    return require_utf8(text, "the description").strip()


def adapter_tensors(weights: dict, info: HypernetInfo, i: int) -> dict:
    """The i-th adapter of a hypernet forward, under PEFT key names, shape-checked against the targets."""
    tensors = {}
    for module, (a, b) in weights.items():
        for pos, t in enumerate(info.targets.of(module)):
            ta, tb = a[i, pos].contiguous().clone(), b[i, pos].contiguous().clone()
            if ta.shape != (info.config.rank, t.in_features) or tb.shape != (t.out_features, info.config.rank):
                raise T2LError(
                    f"hypernetwork output for {t.name} has shapes {tuple(ta.shape)}/{tuple(tb.shape)}, "
                    f"the base needs ({info.config.rank}, {t.in_features})/({t.out_features}, "
                    f"{info.config.rank}); the hypernetwork folder is inconsistent"
                )
            tensors[t.peft_key("A")], tensors[t.peft_key("B")] = ta, tb
    return tensors


def adapter_info(info: HypernetInfo, description: str, truncated: bool, examples: dict | None = None) -> AdapterInfo:
    return AdapterInfo(
        description=description,
        rank=info.config.rank,
        alpha=info.config.alpha,
        target_modules=list(info.config.target_modules),
        base=info.base,
        base_spec=info.base_spec,
        dropout=info.config.dropout,
        truncated=truncated,
        hypernet={"sha256": info.sha256, "variant": info.config.variant, "recipe": info.training.get("recipe")},
        encoder={**info.encoder.to_dict(), "pooling": info.pooling},
        examples=dict(examples or {}),
    )


def read_descriptions(path: Path) -> list[str]:
    """One description per non-blank line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise T2LError(f"cannot read descriptions from {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = Path(path).read_bytes()[: e.start].count(b"\n") + 1
        raise T2LError(
            f"{path} is not UTF-8 text (byte {e.object[e.start : e.start + 1]!r} on line {line}); save it "
            "as UTF-8, one description per line"
        ) from None
    return [line.strip() for line in lines if line.strip()]


def output_plan(count: int, output: Path | None, name: str | None) -> list[tuple[str | None, Path | None]]:
    """(name, export path) for each of `count` adapters.

    One adapter: the name defaults to the output's stem (`-o sent.safetensors` -> `sent`). Several: `-o` must be a
    folder, each adapter is written into it as NAME-i.safetensors, named after --name or the folder.
    """
    if count == 1:
        return [(name or (output.stem if output else None), output)]
    if output is not None and output.suffix in (".safetensors", ".gguf"):
        raise T2LError(f"{count} descriptions make {count} adapters: give -o a folder, not the file {output}")
    stem = name or (output.name if output else None)
    names = [f"{stem}-{i}" if stem else None for i in range(1, count + 1)]
    paths = [output / f"{n or f'adapter-{i}'}.safetensors" if output else None for i, n in enumerate(names, 1)]
    return list(zip(names, paths))
