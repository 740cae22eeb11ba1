#!/usr/bin/env python3
"""Runs `promtool check config` on deploy/prometheus/prometheus.yml as an operator installs it.

The configuration names its token files relative to itself, and promtool insists that they
exist, so the check runs on a copy of deploy/prometheus with placeholder tokens beside it; then
again with the commented-out agents' `authorization` block switched on, as its comment says to
when agents have a metrics token, and with the commented-out HTTPS lines (`scheme: https`,
`tls_config: ca_file: ...`) switched on too and the agents' `insecure_skip_verify` replaced by a
CA file, CA files made with the openssl command beside it, as when the server has a certificate
and a CA signs the agents'. It also checks what the rest of the kit relies on: every
rules file is loaded by the config's rule_files glob, and every scrape job an alert or
dashboard selects (`job="..."`) is defined.

Standard library only. Exit status 0 when everything holds.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN_FILES = ("fleetwatch-token", "fleetwatch-agent-metrics-token")
CA_FILES = ("fleetwatch-ca.pem", "fleetwatch-agents-ca.pem")
# The commented-out HTTPS lines: `# scheme: https`, `# tls_config:`, `#   ca_file: FILE`.
TLS_LINE_RE = re.compile(r"^(\s*)# (scheme: https|tls_config:|  ca_file: \S+)$", re.M)
# The agents' optional authorization block, commented out in prometheus.yml.
AGENT_AUTH_RE = re.compile(
    r"^(\s*)# (authorization:\n)\1# (  type: Bearer\n)\1# (  credentials_file: \S+\n)", re.M)


def promtool_check(promtool, etc, problems, variant):
    r = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=etc,
                       capture_output=True, text=True)
    output = r.stdout + r.stderr
    print(f"--- {variant}\n{output.strip()}")
    if r.returncode != 0:
        problems.append(f"promtool check config failed on {variant} "
                        f"(exit status {r.returncode})")
    return output


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus-dir", default=os.path.join(ROOT, "deploy/prometheus"))
    ap.add_argument("--dashboards", default=os.path.join(ROOT, "deploy/grafana/dashboards"))
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args()
    problems = []

    with tempfile.TemporaryDirectory() as tmp:
        etc = os.path.join(tmp, "prometheus")
        shutil.copytree(args.prometheus_dir, etc)
        for name in TOKEN_FILES:
            with open(os.path.join(etc, name), "w") as f:
                f.write("placeholder-token\n")
        output = promtool_check(args.promtool, etc, problems, "prometheus.yml as shipped")
        for path in sorted(glob.glob(os.path.join(etc, "rules", "*"))):
            name = os.path.relpath(path, etc)
            if f"Checking {name}" not in output and f"Checking {path}" not in output:
                problems.append(f"{name} is not loaded by the config's rule_files")

        config_path = os.path.join(etc, "prometheus.yml")
        with open(config_path, encoding="utf-8") as f:
            shipped = f.read()
        enabled, n = AGENT_AUTH_RE.subn(r"\1\2\1\3\1\4", shipped)
        if n != 1:
            problems.append("prometheus.yml: no commented-out authorization block for agents")
        else:
            with open(config_path, "w", encoding="utf-8") as f:
                f.write(enabled)
            promtool_check(args.promtool, etc, problems, "with the agents' authorization")
            with_tls, n = TLS_LINE_RE.subn(r"\1\2", enabled)
            with_tls, m = re.subn(r"^(\s*)insecure_skip_verify: true$",
                                  r"\1ca_file: fleetwatch-agents-ca.pem", with_tls, flags=re.M)
            # server (3), replicas (3), the agents' service discovery (2)
            if n != 8 or m != 1:
                problems.append(f"prometheus.yml: expected 8 commented-out HTTPS lines and the "
                                f"agents' insecure_skip_verify, found {n} and {m}")
            else:
                for name in CA_FILES:
                    r = subprocess.run(
                        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=ca",
                         "-keyout", os.path.join(tmp, name + ".key"),
                         "-out", os.path.join(etc, name)], capture_output=True, text=True)
                    if r.returncode != 0:
                        problems.append(f"openssl could not make {name}: {r.stderr.strip()}")
                with open(config_path, "w", encoding="utf-8") as f:
                    f.write(with_tls)
                promtool_check(args.promtool, etc, problems, "with HTTPS to server and agents")

    with open(os.path.join(args.prometheus_dir, "prometheus.yml"), encoding="utf-8") as f:
        config = f.read()
    jobs = set(re.findall(r"^\s*- job_name:\s*(\S+)", config, re.M))
    for name in ("credentials_file: fleetwatch-token", "/api/prometheus/sd",
                 "scrape_interval: 15s"):
        if name not in config:
            problems.append(f"prometheus.yml: no `{name}`")
    used = set()
    for path in glob.glob(os.path.join(args.prometheus_dir, "rules", "*.yml")) + glob.glob(
            os.path.join(args.dashboards, "*.json")):
        with open(path, encoding="utf-8") as f:
            used.update(re.findall(r'\bjob\s*=~?\s*\\?"([\w-]+)\\?"', f.read()))
    for job in sorted(used - jobs):
        problems.append(f"job {job!r} is selected by a rule or dashboard but not scraped")

    for p in problems:
        print(p)
    print(f"scrape jobs {sorted(jobs)}: {'FAILED' if problems else 'OK'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
