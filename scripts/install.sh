#!/usr/bin/env bash
# Creates .venv with jaxcnn and the exact tested dependency versions; installs the offline
# Fashion-MNIST package where apt-get is available. Extra arguments are pip extras, e.g. test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "warning: could not install dataset-fashion-mnist; tfds will try to download it." >&2
fi
extras=$(IFS=,; echo "$*")
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c requirements/constraints.txt -e ".${extras:+[$extras]}"
