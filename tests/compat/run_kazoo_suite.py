"""Run kazoo's own test suite against real Apache ZooKeeper or paddock keeper.

    .venv/bin/python tests/compat/run_kazoo_suite.py --target zookeeper
    .venv/bin/python tests/compat/run_kazoo_suite.py --target keeper -k lock
    .venv/bin/python tests/compat/run_kazoo_suite.py --target zookeeper test_lock.py

Prints pass/fail/skip counts, every failing test with its known-exclusion
reason (tests/compat/kazoo_exclusions.py) or "UNEXPECTED", and exits 1 if an
unexpected failure occurred.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kazoo_exclusions import known_failures

from paddock.testing.kazoo_suite import run_kazoo_suite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["zookeeper", "keeper"], default="zookeeper")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--json", type=Path, help="write per-test outcomes to this file")
    parser.add_argument(
        "selection", nargs="*", help="e.g. test_lock.py or test_client.py::TestClient"
    )
    args = parser.parse_args()
    if args.target == "keeper":
        from paddock.testing import keeper_unavailable_reason

        reason = keeper_unavailable_reason()
        if reason:
            print(f"cannot run against keeper: {reason}")
            return 2
    extra = ["-k", args.keyword] if args.keyword else []
    result = run_kazoo_suite(args.target, args.selection or None, extra)
    known = known_failures(args.target)
    unexpected = []
    print()
    print(f"kazoo suite: {result.summary()}")
    for test_id in result.failing():
        reason = known.get(test_id)
        if reason is None:
            unexpected.append(test_id)
        print(f"  {result.outcomes[test_id]:6} {test_id}: {reason or 'UNEXPECTED'}")
        if reason is None and test_id in result.messages:
            print(f"         {result.messages[test_id]}")
    fixed = sorted(t for t in known if result.outcomes.get(t) == "passed")
    for test_id in fixed:
        print(f"  now passes (drop its exclusion): {test_id}")
    if args.json:
        args.json.write_text(json.dumps(result.outcomes, indent=1, sort_keys=True))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
