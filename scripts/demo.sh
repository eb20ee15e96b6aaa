#!/usr/bin/env bash
# The main job on a built-in sample image, against local services this command starts and stops itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
VENV="${CHAINGATE_VENV:-.venv}"
"$VENV/bin/python" -m pip install -q -e . -e ./testing
exec "$VENV/bin/python" -m chaingate_testing.demo "$@"
