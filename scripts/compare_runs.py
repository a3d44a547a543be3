"""Runs side by side: train and evaluated-split error per epoch (He et al.'s Figure 6 style),
and a markdown table of each run's epochs.

    python scripts/compare_runs.py --out=docs/results/degradation/curves.png \
        plain20=WORKDIR_A resnet20=WORKDIR_B
    python scripts/compare_runs.py --table resnet20=WORKDIR   # the table only

Each run is NAME=DIR, DIR a workdir (or a folder holding a copy of its metrics.jsonl).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxcnn import report  # noqa: E402


def evaluated(rows) -> str:
  return "validation" if any(r["split"] == "validation" for r in rows) else "test"


def table(name: str, rows) -> str:
  train, test = report.by_epoch(rows, "train"), report.by_epoch(rows, evaluated(rows))
  lines = [f"{name}:", "", f"| epoch | step | train loss | train acc | {evaluated(rows)} acc "
           f"| train s (img/s) |", "|---|---|---|---|---|---|"]
  for e in sorted(train):
    t, v = train[e], test.get(e, {})
    lines.append(f"| {e} | {t['step']:,} | {t['loss']:.3f} | {t['accuracy']:.3f} | "
                 f"{v.get('accuracy', float('nan')):.3f} | {t['seconds']:,.0f} "
                 f"({t['images_per_sec']:,.0f}) |")
  return "\n".join(lines)


def plot(runs: dict[str, list], path: str) -> None:
  plt = report._pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
  for i, (name, rows) in enumerate(runs.items()):
    colour = f"C{i}"
    for split, style in (("train", "--"), (evaluated(rows), "-")):
      points = report.by_epoch(rows, split)
      xs = sorted(points)
      ax.plot(xs, [100 * (1 - points[e]["accuracy"]) for e in xs], style, color=colour,
              label=f"{name} {split}")
  ax.set_xlabel("epoch")
  ax.set_ylabel("error (%)")
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="NAME=WORKDIR")
  parser.add_argument("--out", help="the figure's path")
  parser.add_argument("--table", action="store_true", help="print each run's table")
  args = parser.parse_args(argv)
  runs = {}
  for item in args.runs:
    name, sep, directory = item.partition("=")
    if not sep or not os.path.exists(os.path.join(directory, "metrics.jsonl")):
      parser.error(f"{item!r}: give NAME=DIR, DIR holding a metrics.jsonl")
    runs[name] = report.read_metrics(directory)
  if args.out:
    plot(runs, args.out)
    print(f"wrote {args.out}")
  if args.table or not args.out:
    for name, rows in runs.items():
      print(table(name, rows) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
