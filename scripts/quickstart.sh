#!/usr/bin/env bash
# Fresh machine -> the README's main job: LeNet-5 on the real Fashion-MNIST, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python launch.py --config=configs/lenet_fashion_mnist.py \
  --workdir="${1:-runs/lenet_fashion_mnist}"
