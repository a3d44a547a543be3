#!/usr/bin/env bash
# Fresh machine -> the test suite (CPU, 8 virtual devices; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# Two workers (XLA's CPU compiler is mostly single-threaded), taking tests one by one except
# the files marked xdist_group, which go whole to one worker (their module-scoped fixtures).
exec .venv/bin/python -m pytest -q -n "${JAXCNN_TEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@"
