"""Writing adapters out, whole or not at all: one .safetensors file, a PEFT folder (the same bytes as
adapter_model.safetensors, adapter_config.json and a model card), or a GGUF LoRA for llama.cpp and ollama
(`t2l.gguf_lora`)."""

import json
import os
from pathlib import Path

from t2l.adapter import (
    PEFT_CONFIG,
    PEFT_WEIGHTS,
    AdapterInfo,
    adapter_bytes,
    is_folder_form,
    read_adapter,
    read_info,
    weights_file,
)
from t2l.card import card, outside_peft_config
from t2l.errors import T2LError
from t2l.files import folder_atomic, write_bytes_atomic

FOLDER_FILES = (PEFT_WEIGHTS, PEFT_CONFIG, "README.md")  # what write_peft_folder writes
FILE_SUFFIXES = (".safetensors", ".gguf")  # one file; any other name is a PEFT folder


def _folder(path: Path) -> bool:
    return Path(path).suffix not in FILE_SUFFIXES


def check_output(path: Path, force: bool) -> None:
    """Fail before any work if `path` cannot be written: a folder where a file is asked for or a file where a
    folder is (--force or not: neither is what was meant), exists without --force, or its folder is not
    writable."""
    path = Path(path)
    if path.name in ("", ".", ".."):  # '.', '..', '/': folders that hold others, never an adapter's own
        raise T2LError(
            f"cannot write the adapter to {str(path)!r}: it names the folder you are in (or one above "
            f"it), not a new one; give it a name of its own, e.g. {path / 'my-adapter'}"
        )
    if path.is_dir() and not _folder(path):
        raise T2LError(
            f"{path} is a folder, but a {path.suffix} name writes one file; remove the folder or choose another path"
        )
    if path.exists() and not path.is_dir() and _folder(path):
        raise T2LError(
            f"{path} is a file, but a name without .safetensors or .gguf writes a PEFT folder; remove the "
            "file or name the output NAME.safetensors (or NAME.gguf for llama.cpp)"
        )
    if path.exists() and not force:
        raise T2LError(f"{path} exists already; pass --force to overwrite it or choose another path")
    if path.is_dir():
        _check_replaceable(path)
    parent = path.parent if path.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise T2LError(f"cannot write {path}: {probe} is not a writable folder; choose another output path")


def _check_replaceable(folder: Path) -> None:
    """--force replaces a folder only when it is empty or an adapter folder holding nothing but what is written
    again: never a user's other files."""
    names = sorted(p.name for p in folder.iterdir())
    others = [n for n in names if n not in FOLDER_FILES]
    if others or (names and PEFT_CONFIG not in names and PEFT_WEIGHTS not in names):
        shown = (others or names)[0]
        raise T2LError(
            f"{folder} is not an adapter folder (it holds {shown!r}); --force replaces only an adapter "
            "folder, so nothing was deleted: choose a new folder or empty this one"
        )


def write_adapter(
    tensors: dict,
    info: AdapterInfo,
    path: Path,
    force: bool = False,
    name: str | None = None,
    data: bytes | None = None,
) -> Path:
    """Any form, chosen by `path`'s suffix, from the tensors (`data`: their file's bytes, when encoded already). A
    folder's model card (a GGUF's general.name) is `name`, else the folder's."""
    check_output(path, force)
    if Path(path).suffix == ".gguf":
        return _write_gguf(tensors, info, Path(path), name)
    return _write(data if data is not None else adapter_bytes(tensors, info), info, Path(path), name)


def export_adapter(src: Path, dest: Path, force: bool = False, name: str | None = None) -> Path:
    """Copy a t2l adapter into any form, chosen by `dest`'s suffix: its file's bytes as they are, never re-encoded
    (what the registry hashed is what leaves it), or converted to a llama.cpp GGUF for a `.gguf` name. A folder's
    model card (a GGUF's general.name) is `name` (the adapter's), else the folder's."""
    check_output(dest, force)
    info = read_info(src)
    if info is None:
        raise T2LError(f"{src} was not made by t2l; copy it with ordinary file tools")
    if Path(dest).suffix == ".gguf":
        return _write_gguf(read_adapter(src)[0], info, Path(dest), name)
    return _write(weights_file(src).read_bytes(), info, Path(dest), name)


def _write_gguf(tensors: dict, info: AdapterInfo, path: Path, name: str | None = None) -> Path:
    from t2l.gguf_lora import base_layout, write_gguf_lora

    layout = base_layout(info.base_spec)
    try:
        return write_gguf_lora(tensors, info.alpha, layout, path, name or path.stem)
    except OSError as e:
        raise T2LError(f"cannot write {path} ({e.strerror}); choose another output path") from None


def _write(data: bytes, info: AdapterInfo, path: Path, name: str | None = None) -> Path:
    try:
        if not is_folder_form(path):
            return write_bytes_atomic(path, data)
        return write_peft_folder(
            path, data, outside_peft_config(info), card(info, name or path.name, [], None), replace=True
        )
    except OSError as e:  # what check_output cannot foresee: /proc, a full disk, a read-only mount
        raise T2LError(f"cannot write {path} ({e.strerror}); choose another output path") from None


def write_peft_folder(path: Path, weights: bytes, config: dict, readme: str, replace: bool = False) -> Path:
    """The PEFT folder form (`PeftModel.from_pretrained` loads it) with `readme` as its model card."""
    with folder_atomic(path, replace=replace) as tmp:
        (tmp / PEFT_WEIGHTS).write_bytes(weights)
        (tmp / PEFT_CONFIG).write_text(json.dumps(config, indent=2))
        (tmp / "README.md").write_text(readme)
    return Path(path)
