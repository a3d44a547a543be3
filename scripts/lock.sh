#!/usr/bin/env bash
# Regenerates requirements/constraints.txt from a fresh install of the newest allowed versions.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -e '.[test]'
{ echo "# Exact versions tested on CPU (Python 3.11, x86_64). Regenerate with scripts/lock.sh."
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^jaxcnn'; } > requirements/constraints.txt
rm -rf "$tmp"
