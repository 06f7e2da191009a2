"""Text-to-LoRA inside vLLM: a LoRA resolver, the plugin vLLM calls when a request names an adapter it has not
loaded. A request whose `model` is a registered adapter's name or id, or `t2l:<description>`, gets a PEFT folder
that t2l writes once per adapter (named by the adapter's sha256 under $T2L_HOME/vllm); vLLM then batches, evicts
(`--max-loras`) and parallelises it like any LoRA of its own.

vLLM imports this module from the `vllm.general_plugins` entry point (pyproject.toml) in each of its processes;
only the API server's resolver is ever asked. Nothing else in t2l imports it, so t2l never needs vLLM.
"""

import asyncio
import os
import threading
from pathlib import Path

from vllm.exceptions import VLLMValidationError
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

from registry import RegistryError
from t2l.errors import T2LError
from t2l.home import t2l_home
from t2l_cli.actions import use
from t2l_cli.actions.common import open_registry
from t2l_cli.server.service import DESCRIBED, check_length
from t2l_cli.server.vllm_launch import BASE_ENV, HYPERNET_ENV


class WrongBase(T2LError):
    """The adapter was made for another base than the one vLLM serves."""


def register() -> None:
    """The entry point: vLLM calls it at start-up in every process it runs."""
    LoRAResolverRegistry.register_resolver("t2l", T2LResolver())


class T2LResolver(LoRAResolver):
    def __init__(self):
        self.hypernets = use.Hypernets()  # loaded on the first t2l:<description>, then kept for the process
        self.lock = threading.Lock()  # one hypernetwork forward and registry write at a time
        self.bases: dict[str, str] = {}  # vLLM's served name -> sha256 of t2l's base

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        # the hypernetwork's forward and the file writes block: keep them off vLLM's event loop
        try:
            return await asyncio.to_thread(self.resolve, base_model_name, lora_name)
        except T2LError as e:  # vLLM answers these 400 with the message; anything else stays a 500
            raise VLLMValidationError(str(e), parameter="model") from None

    def resolve(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        """None when `lora_name` is nothing t2l knows (vLLM then answers that the model does not exist)."""
        with self.lock:
            reg = open_registry()
            row = self._row(reg, lora_name)
            if row is None:
                return None
            served = self._served_sha256(base_model_name)
            if served != row.base_sha256:
                raise WrongBase(
                    f"the adapter {lora_name!r} was made for the base {row.base_name} (sha256 "
                    f"{row.base_sha256[:12]}), but this vLLM serves {self._served_label(base_model_name)} "
                    f"(sha256 {served[:12]}); make it with a hypernetwork trained for this base, or "
                    f"serve {row.base_name}"
                )
            folder = self._peft_folder(reg, row)
        # vLLM 0.32 numbers each resolved name itself; an id from the content is a valid one where it does not
        return LoRARequest(lora_name=lora_name, lora_int_id=int(row.sha256[:15], 16), lora_path=str(folder))

    def _row(self, reg, lora_name: str):
        if lora_name.startswith(DESCRIBED):
            description = lora_name[len(DESCRIBED) :]
            check_length(description)
            chosen = use.describe_adapter(reg, self.hypernets, description, os.environ.get(HYPERNET_ENV, "default"))
            return reg.get_adapter(chosen.adapter_id)
        try:
            return reg.get_adapter(lora_name)
        except RegistryError:
            return None

    def _served_sha256(self, base_model_name: str) -> str:
        """The identity of the base vLLM serves: t2l's spec of it from the environment, else the folder vLLM loaded
        (one t2l dequantized from a GGUF names its source)."""
        if base_model_name not in self.bases:
            from t2l.base import identify_base
            from t2l.locate import read_json

            spec = os.environ.get(BASE_ENV) or base_model_name
            source = Path(spec).expanduser() / "t2l-source.json"
            self.bases[base_model_name] = (
                read_json(source)["sha256"] if source.is_file() else identify_base(spec).sha256
            )
        return self.bases[base_model_name]

    @staticmethod
    def _served_label(base_model_name: str) -> str:
        return os.environ.get(BASE_ENV) or Path(base_model_name).name

    @staticmethod
    def _peft_folder(reg, row) -> Path:
        """The adapter as a PEFT folder, written once: named by its sha256, so a folder there is this adapter."""
        from t2l.export import export_adapter

        folder = t2l_home() / "vllm" / row.sha256[:32]
        if not (folder / "adapter_config.json").is_file():
            export_adapter(reg.adapter_file(row), folder, force=True, name=row.name or row.id[:8])
        return folder
