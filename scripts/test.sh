#!/usr/bin/env bash
# Set up, start a local PostgreSQL for the ledger tests, install chromium for the
# console's browser tests, then run the linters,
# the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PINFACTORY_TEST_PG_DSN=${PINFACTORY_TEST_PG_DSN:-$(bash scripts/postgres.sh)}
export PINFACTORY_TEST_PG_DSN
PINFACTORY_CHROMIUM=${PINFACTORY_CHROMIUM:-$(bash scripts/chromium.sh)}
export PINFACTORY_CHROMIUM
.venv/bin/ruff check src tests bench
.venv/bin/mypy src/pinfactory
exec .venv/bin/python -m pytest "$@"
