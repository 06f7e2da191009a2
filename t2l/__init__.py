"""Text-to-LoRA: a task description in, a LoRA adapter out, in one forward pass of a hypernetwork.

Heavy modules (torch, transformers) load on first use, so importing `t2l` stays cheap.
"""

import importlib

__version__ = "0.1.0"  # the only copy: pyproject.toml reads it (dynamic version)

_EXPORTS = {
    "T2LError": "t2l.errors",
    "t2l_home": "t2l.home",
    "HypernetConfig": "t2l.config",
    "HyperLoRA": "t2l.hypernet",
    "AdapterMaker": "t2l.make",
    "GeneratedAdapter": "t2l.make",
    "save_hypernet": "t2l.hypernet_files",
    "load_hypernet": "t2l.hypernet_files",
    "load_adapter": "t2l.adapter",
    "read_adapter": "t2l.adapter",
    "write_adapter": "t2l.export",
    "export_adapter": "t2l.export",
    "load_base": "t2l.base",
    "identify_base": "t2l.base",
    "load_encoder": "t2l.encoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 't2l' has no attribute {name!r}")
