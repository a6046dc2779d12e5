#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite (real SoftHSM2 token, real LMDB files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
