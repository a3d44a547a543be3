"""Where the test suite's time goes: seconds per test file and the slowest tests.

    python scripts/suite_times.py [.pytest_cache/suite.xml] [--top=30]

Reads the JUnit XML that scripts/test.sh has pytest write (each test's setup, call and
teardown together). The per-file sums are worker time, not wall time: two workers share
the suite (docs/tests.md).
"""
import argparse
import collections
import xml.etree.ElementTree as ET


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("junit_xml", nargs="?", default=".pytest_cache/suite.xml")
  parser.add_argument("--top", type=int, default=30, help="how many of the slowest tests")
  args = parser.parse_args()
  per_file, counts, tests = collections.Counter(), collections.Counter(), []
  for case in ET.parse(args.junit_xml).iter("testcase"):
    module, seconds = case.get("classname"), float(case.get("time") or 0.0)
    if not module:  # a module skipped as a whole at collection: no test ran
      continue
    per_file[module] += seconds
    counts[module] += 1
    tests.append((seconds, f"{module.rsplit('.', 1)[-1]}::{case.get('name')}"))
  total = sum(per_file.values())
  print(f"{total / 60:.1f} worker-minutes over {sum(counts.values())} tests\n")
  print("| file | tests | seconds | share |\n|---|---|---|---|")
  for module, seconds in per_file.most_common():
    print(f"| {module} | {counts[module]} | {seconds:.0f} | {seconds / total:.0%} |")
  print(f"\n| slowest {args.top} | seconds |\n|---|---|")
  for seconds, name in sorted(tests, reverse=True)[:args.top]:
    print(f"| {name} | {seconds:.1f} |")


if __name__ == "__main__":
  main()
