#!/usr/bin/env bash
# Sets everything up, then runs the main job on its embedded default (a Meguro-sized identity file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cs-demo --state-dir state/demo "$@"
