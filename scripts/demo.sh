#!/usr/bin/env bash
# Set up, then run the main job: the gateway on the default team answering sample
# questions through the OpenAI SDK, showing which member took each and what it cost.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pinfactory demo "$@"
