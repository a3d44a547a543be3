#!/usr/bin/env bash
# Fresh machine -> the test suite (CPU, 8 virtual devices; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
exec .venv/bin/python -m pytest -q "$@"
