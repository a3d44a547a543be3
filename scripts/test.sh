#!/usr/bin/env bash
# Fresh machine -> the test suite (CPU, 8 virtual devices; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# Two workers, a test file each at a time (XLA's CPU compiler is mostly single-threaded).
exec .venv/bin/python -m pytest -q -n "${JAXCNN_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
