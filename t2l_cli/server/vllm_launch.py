"""`t2l serve --engine vllm`: vLLM's OpenAI server as a child process on t2l's folder of the base, with t2l's LoRA
resolver (vllm_plugin.py) answering for registered adapters and t2l:<description> models."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from t2l.errors import T2LError

HYPERNET_ENV = "T2L_VLLM_HYPERNET"  # the resolver's hypernetwork for t2l:<description> (default: the shipped one)
BASE_ENV = "T2L_VLLM_BASE"  # t2l's spec of the base vLLM serves (default: the folder vLLM loaded)
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts (1 aside)
START_S = 900  # vLLM on a CPU takes a minute or two to start; on a busy one much longer


@dataclass(frozen=True)
class VLLMSettings:
    """What `t2l serve --engine vllm` hands vLLM."""

    folder: Path
    """The base's Hugging Face folder (t2l's dequantized copy of a GGUF)."""
    served_name: str
    """The model name clients use for the bare base (`base` too, as with t2l's own server)."""
    base_spec: str
    hypernet: str
    host: str = "127.0.0.1"
    port: int = 8000
    max_rank: int = 8
    """Largest rank among the adapters it may be asked for."""
    max_loras: int = 8
    """Adapters in one batch (vLLM's default is 1)."""
    kv_cache_gib: int = 1


def check_installed() -> None:
    if find_spec("vllm") is None:
        raise T2LError(
            f"vLLM is not installed in this Python ({sys.executable}); set up an environment with it and "
            "t2l (`bash setup.sh --vllm` in t2l's repository makes .venv-vllm), then run that "
            "environment's t2l: .venv-vllm/bin/t2l serve --engine vllm"
        )


def max_lora_rank(needed: int) -> int:
    """The smallest rank vLLM accepts that holds `needed`."""
    fits = [r for r in VLLM_RANKS if r >= needed]
    if not fits:
        raise T2LError(f"an adapter of rank {needed} is larger than vLLM's largest --max-lora-rank {VLLM_RANKS[-1]}")
    return fits[0]


def command(s: VLLMSettings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(s.folder),
        "--served-model-name",
        s.served_name,
        "base",
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--enable-lora",
        "--max-lora-rank",
        str(max_lora_rank(s.max_rank)),
        "--max-loras",
        str(s.max_loras),
        # t2l computes in float32 on a CPU; so does vLLM then, and their greedy answers agree
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--disable-uvicorn-access-log",
        # a fixed KV cache: by default vLLM reserves 92 % of the machine's memory, and refuses to start on a CPU
        # that other work shares
        "--kv-cache-memory-bytes",
        str(s.kv_cache_gib * 2**30),
    ]


def environment(s: VLLMSettings, api_key: str | None) -> dict[str, str]:
    env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True")
    env[BASE_ENV] = s.base_spec
    env[HYPERNET_ENV] = s.hypernet
    if api_key:
        env["VLLM_API_KEY"] = api_key  # in the environment, not the command line everyone's `ps` shows
    return env


def run(s: VLLMSettings, api_key: str | None, on_status: Callable[[str], None]) -> int:
    """Start vLLM, say where it listens once it answers, and pass Ctrl-C or SIGTERM on to it; vLLM's exit status."""
    child = subprocess.Popen(command(s), env=environment(s, api_key), start_new_session=True)
    stop = lambda *_: child.send_signal(signal.SIGTERM)  # noqa: E731 (a handler, named once)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    if _wait_ready(child, s):
        on_status(
            f"vLLM serves {s.served_name} on http://{s.host}:{s.port} (OpenAI API at "
            f"http://{s.host}:{s.port}/v1{', API key required' if api_key else ''}); adapters by registered "
            "name or id, or t2l:<description>; Ctrl-C stops"
        )
    return child.wait()


def _wait_ready(child: subprocess.Popen, s: VLLMSettings) -> bool:
    deadline = time.monotonic() + START_S
    while child.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{s.host}:{s.port}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False
