#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, lint (ruff, mypy --strict), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec "${CHAINGATE_VENV:-.venv}/bin/tox" run -e lint,py -- "$@"
