#!/usr/bin/env bash
# benchmarks/train_speed.py on two commits of jaxcnn, alternating round by round, so that the
# drift of a shared machine's speed falls on both alike.
#
#   bash benchmarks/train_speed_ab.sh BEFORE [AFTER] [--networks=...] [--steps=N] [ROUNDS=3]
#
# BEFORE and AFTER are commits (AFTER: the working tree when omitted); each is checked out
# in a temporary git worktree (the working tree itself for AFTER). The remaining arguments
# go to train_speed.py. Prints one JSON line per network and round, labelled "before" or
# "after", then a table of the median training images/s of each and their ratio.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
before="$1"; shift
after=""
if [[ $# -gt 0 && "$1" != --* ]]; then after="$1"; shift; fi
rounds="${ROUNDS:-3}"
work="$(mktemp -d)"
trap 'git -C "$root" worktree remove --force "$work/before" >/dev/null 2>&1 || true;
      [[ -n "$after" ]] && git -C "$root" worktree remove --force "$work/after" >/dev/null 2>&1;
      rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$work/before" "$before" >/dev/null 2>&1
after_tree="$root"
if [[ -n "$after" ]]; then
  git -C "$root" worktree add --detach "$work/after" "$after" >/dev/null 2>&1
  after_tree="$work/after"
fi
for round in $(seq "$rounds"); do
  for side in before after; do
    tree="$work/before"; [[ "$side" == after ]] && tree="$after_tree"
    # PYTHONPATH: the tree's own jaxcnn, not the one the virtual environment installed.
    (cd "$tree" && PYTHONPATH="$tree" "$python" benchmarks/train_speed.py "$@" \
        --out="$work/$side.jsonl" > /dev/null 2>&1)
  done
done
"$python" - "$work" <<'EOF'
import json, statistics, sys
rows = {side: [json.loads(l) for l in open(f"{sys.argv[1]}/{side}.jsonl")] for side in ("before", "after")}
for side, lines in rows.items():
  for row in lines:
    print(json.dumps({"side": side, **row}))
print("\n| network, batch | before img/s (median, min-max of rounds) | after img/s | after / before |")
print("|---|---|---|---|")
names = list(dict.fromkeys(r["network"] for r in rows["before"]))
for name in names:
  figures = {side: [r["train_img_s"] for r in rows[side] if r["network"] == name] for side in rows}
  med = {side: statistics.median(v) for side, v in figures.items()}
  batch = next(r["batch"] for r in rows["before"] if r["network"] == name)
  print(f"| {name}, {batch} | " + " | ".join(
      f"{med[s]:,.1f} ({min(figures[s]):,.1f}-{max(figures[s]):,.1f})" for s in ("before", "after"))
      + f" | {med['after'] / med['before']:.3f} |")
EOF
