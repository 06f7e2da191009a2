"""Finding models by name, path or Hub id, and naming what was found (`ModelRef`)."""

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from t2l.errors import T2LError
from t2l.hashing import sha256_files


@dataclass(frozen=True)
class ModelRef:
    """Which model exactly: a name plus the sha256 of its weights (and the Hub revision when it came from the Hub)."""

    name: str
    sha256: str
    revision: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelRef":
        return cls(name=d["name"], sha256=d["sha256"], revision=d.get("revision"))

    def same_weights(self, other: "ModelRef") -> bool:
        return self.sha256 == other.sha256


def embedded_path(package: str, relative: str, install_hint: str) -> Path:
    """A file or folder shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise T2LError(f"the package {package!r} is not installed; install it with: {install_hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise T2LError(f"{path} is missing from the {package!r} package; reinstall it with: {install_hint}")
    return path


def looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))


def hub_snapshot(repo_id: str, what: str) -> Path:
    """The local snapshot of a Hub repo: downloaded when online, else taken from the Hugging Face cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "tokenizer*"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except RepositoryNotFoundError:
        raise T2LError(
            f"no {what} {repo_id!r} on the Hugging Face Hub; check the id (or log in for private repos)"
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise T2LError(
            f"the {what} {repo_id!r} is not in the Hugging Face cache "
            f"and the Hub cannot be reached ({type(e).__name__}); "
            "run once with network access or pass a local folder"
        ) from None


def model_folder(spec: str, what: str, embedded: dict, other_forms: str = "") -> tuple[Path, ModelRef]:
    """A model named by an embedded name, a local HF folder or a Hub id, with its identity."""
    if spec in embedded:
        folder = embedded_path(*embedded[spec])
        return folder, folder_ref(folder, name=spec)
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise T2LError(f"{p} is not a Hugging Face model folder (no config.json)")
        return p, folder_ref(p, name=p.resolve().name)
    if looks_like_hub_id(spec):
        snap = hub_snapshot(spec, what)
        return snap, folder_ref(snap, name=spec, revision=snap.name)
    raise T2LError(
        f"unknown {what} {spec!r}: give an embedded name ({', '.join(embedded)}), a local folder"
        f"{other_forms} or a Hub id"
    )


def weight_files(folder: Path, what: str) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise T2LError(
            f"{folder} holds no .safetensors weights for the {what}; t2l never loads pickled weights "
            "(convert them with `save_pretrained(..., safe_serialization=True)`)"
        )
    return files


def folder_ref(folder: Path, name: str, revision: str | None = None) -> ModelRef:
    return ModelRef(name=name, sha256=sha256_files(weight_files(folder, "model")), revision=revision)


def quiet_transformers() -> None:
    """transformers draws its own tqdm bars while loading; t2l reports progress through callbacks instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise T2LError(f"cannot read {path}: {e}") from None
