#!/usr/bin/env bash
# Fresh machine -> the test suite (CPU, 8 virtual devices; see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# Two workers, a test file each at a time (XLA's CPU compiler is mostly single-threaded);
# the recipes' training runs go one at a time to either worker (tests/conftest.py).
# A crashed worker ends the run at once, naming its test: xdist 3.8 replaces it and can then
# wait forever for the crashed file (pytest-dev/pytest-xdist#1323).
# Each test's seconds also go to .pytest_cache/suite.xml (python scripts/suite_times.py).
exec .venv/bin/python -m pytest -q -n "${JAXCNN_TEST_WORKERS:-2}" --dist loadfile \
  --max-worker-restart=0 --durations=25 --junitxml=.pytest_cache/suite.xml "$@"
