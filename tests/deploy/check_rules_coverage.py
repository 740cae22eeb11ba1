#!/usr/bin/env python3
"""Checks that the promtool unit tests in tests/deploy cover every rule in deploy/prometheus/rules.

Every alert needs an alert_rule_test that expects it to fire (non-empty exp_alerts) and one that
expects it silent (`exp_alerts: []`); every recording rule needs a promql_expr_test whose expr is
the rule's name and whose exp_samples are not empty. promtool itself checks that the tests pass.

Standard library only, so the YAML is read by convention rather than parsed: the test files
write `alertname: NAME` directly followed by `exp_alerts:`, and `- expr: NAME` directly followed
by `eval_time:` and `exp_samples:` (see tests/deploy/*_test.yml).
"""

import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ALERT_TEST_RE = re.compile(
    r"^\s*alertname:\s*(\S+)\s*\n\s*exp_alerts:[ \t]*(\[\])?[ \t]*(?:#.*)?\n(\s*- exp_labels:)?",
    re.M)
EXPR_TEST_RE = re.compile(
    r"^\s*- expr:\s*(\S+)\s*\n\s*eval_time:\s*\S+\s*\n\s*exp_samples:[ \t]*(\[\])?[ \t]*\n"
    r"(\s*- labels:)?", re.M)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", default=os.path.join(ROOT, "deploy/prometheus/rules"))
    ap.add_argument("--tests", default=os.path.join(ROOT, "tests/deploy"))
    args = ap.parse_args()

    alerts, records = set(), set()
    for path in sorted(glob.glob(os.path.join(args.rules, "*.yml"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        alerts.update(re.findall(r"^\s*- alert:\s*(\S+)", text, re.M))
        records.update(re.findall(r"^\s*- record:\s*(\S+)", text, re.M))

    fires, silent, computed = set(), set(), set()
    for path in sorted(glob.glob(os.path.join(args.tests, "*_test.yml"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name, empty, labels in ALERT_TEST_RE.findall(text):
            if empty:
                silent.add(name)
            elif labels:
                fires.add(name)
        for expr, empty, labels in EXPR_TEST_RE.findall(text):
            if not empty and labels:
                computed.add(expr)

    problems = []
    if not alerts or not records:
        problems.append(f"no alerts or no recording rules found in {args.rules}")
    for a in sorted(alerts - fires):
        problems.append(f"alert {a}: no test where it fires")
    for a in sorted(alerts - silent):
        problems.append(f"alert {a}: no test where it stays silent")
    for r in sorted(records - computed):
        problems.append(f"recording rule {r}: no test of the value it computes")
    for p in problems:
        print(p)
    print(f"{len(alerts)} alerts, {len(records)} recording rules: "
          f"{'FAILED' if problems else 'every one tested'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
