#!/usr/bin/env bash
# Create .venv and install pinfactory with its pinned dependencies.
# Idempotent: does nothing when .venv already matches pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.pinfactory-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "setup: installing pinfactory into .venv (the first run builds llama-cpp-python, about 5 minutes)"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned to the CPU build, so nothing pulls a CUDA build in.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# llama-cpp-python has no wheel for this platform on PyPI: it compiles once, and
# pip's wheel cache (~/.cache/pip) serves the built wheel to every later install.
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/python -m pip install --quiet -e ".[dev]"
echo "$want" > "$stamp"
echo "setup: done"
