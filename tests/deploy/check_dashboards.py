#!/usr/bin/env python3
"""Checks the Grafana dashboards in deploy/grafana/dashboards and lists their queries.

Each dashboard must be valid JSON that Grafana imports as is: a uid and title of its own, no
numeric id, unique panel ids (rows' nested panels included), a `datasource` variable of type
datasource that every panel, target and query variable uses, a description on every panel
(rows aside), and a non-empty expr on every target. Every PromQL expression — panel targets and
the series selectors inside label_values() of query variables — must parse (checked with
`promtool check rules` on a generated rules file), name only families fleetwatch exports
(spec/METRICS.md; the GPU ledger, energy and GPU health families of docs/api.md,
docs/job-summaries.md and docs/gpu-health.md) or recording rules of deploy/prometheus/rules, and
use dashboard variables only as `label=~"$var"`, so that substituting `.+` for them gives a query
over every value.

The substituted queries are listed as JSON (--queries-out, or compared with --expected, which
tests/deploy/dashboard_queries.json is): every one of them can be run against a Prometheus that
scrapes a real server. After changing a dashboard, regenerate that file with
  tests/deploy/check_dashboards.py --write-expected tests/deploy/dashboard_queries.json

Standard library only. Exit status 0 when everything holds, 1 with one line per problem.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Families fleetwatch exports (spec/METRICS.md) and `up`, which Prometheus adds per target.
DSTACK_FAMILIES = {
    "dstack_instance_duration_seconds_total", "dstack_instance_price_dollars_per_hour",
    "dstack_instance_gpu_count", "dstack_instance_status", "dstack_instance_unreachable",
    "dstack_run_count_total", "dstack_run_count_terminated_total",
    "dstack_run_count_failed_total", "dstack_run_count_done_total", "dstack_runs",
    "dstack_job_duration_seconds_total", "dstack_job_price_dollars_per_hour",
    "dstack_job_gpu_count", "dstack_job_cpu_count", "dstack_job_cpu_time_seconds_total",
    "dstack_job_memory_total_bytes", "dstack_job_memory_usage_bytes",
    "dstack_job_memory_working_set_bytes", "dstack_job_gpu_usage_ratio",
    "dstack_job_gpu_memory_total_bytes", "dstack_job_gpu_memory_usage_bytes",
    "dstack_pending_runs_total",
    "dstack_project_cost_dollars_total", "dstack_project_gpu_seconds_total",
    "fleetwatch_agent_poll_errors_total",
    # GPU ledger, energy and GPU health (docs/api.md, docs/job-summaries.md, docs/gpu-health.md).
    "fleetwatch_gpu_state_seconds_total", "fleetwatch_run_gpu_idle_ratio",
    "fleetwatch_project_gpu_idle_seconds_total", "fleetwatch_project_idle_cost_dollars_total",
    "fleetwatch_project_gpu_energy_joules_total", "fleetwatch_project_gpu_busy_seconds_total",
    "fleetwatch_project_carbon_grams_total", "fleetwatch_run_gpu_energy_joules",
    "fleetwatch_instance_health", "fleetwatch_gpu_health", "fleetwatch_gpu_xid_errors_total",
    "fleetwatch_gpu_ecc_errors_total", "fleetwatch_gpu_remapped_rows",
    "fleetwatch_gpu_power_watts", "fleetwatch_gpu_temperature_celsius", "fleetwatch_gpu_throttle",
    "up",
}
HISTOGRAMS = {"dstack_submit_to_provision_duration_seconds"}
DCGM_FIELDS = """
DEV_GPU_UTIL DEV_MEM_COPY_UTIL DEV_ENC_UTIL DEV_DEC_UTIL DEV_FB_FREE DEV_FB_USED DEV_SM_CLOCK
DEV_MEM_CLOCK DEV_MEMORY_TEMP DEV_GPU_TEMP DEV_POWER_USAGE DEV_XID_ERRORS DEV_ROW_REMAP_FAILURE
PROF_GR_ENGINE_ACTIVE PROF_SM_ACTIVE PROF_SM_OCCUPANCY PROF_PIPE_TENSOR_ACTIVE
PROF_PIPE_FP64_ACTIVE PROF_PIPE_FP32_ACTIVE PROF_PIPE_FP16_ACTIVE PROF_PIPE_INT_ACTIVE
PROF_DRAM_ACTIVE PROF_PCIE_TX_BYTES PROF_PCIE_RX_BYTES PROF_NVLINK_RX_BYTES PROF_NVLINK_TX_BYTES
DEV_TOTAL_ENERGY_CONSUMPTION DEV_PCIE_REPLAY_COUNTER DEV_POWER_VIOLATION DEV_THERMAL_VIOLATION
DEV_SYNC_BOOST_VIOLATION DEV_BOARD_LIMIT_VIOLATION DEV_LOW_UTIL_VIOLATION
DEV_RELIABILITY_VIOLATION DEV_ECC_SBE_VOL_TOTAL DEV_ECC_DBE_VOL_TOTAL DEV_ECC_SBE_AGG_TOTAL
DEV_ECC_DBE_AGG_TOTAL DEV_RETIRED_SBE DEV_RETIRED_DBE DEV_RETIRED_PENDING
DEV_UNCORRECTABLE_REMAPPED_ROWS DEV_CORRECTABLE_REMAPPED_ROWS
DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL
DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL
DEV_NVLINK_BANDWIDTH_TOTAL DEV_NVLINK_BANDWIDTH_L0
""".split()
KNOWN_METRICS = (DSTACK_FAMILIES | {"DCGM_FI_" + f for f in DCGM_FIELDS}
                 | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")})
assert len(DCGM_FIELDS) == 49

# Grafana's built-in variables, replaced by values that make a valid query.
BUILTINS = {
    "__rate_interval": "1m", "__interval": "1m", "__range": "1h",
    "__range_s": "3600", "__range_ms": "3600000", "__interval_ms": "60000",
}
ALL_VALUES = ".+"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan", "atan2"}
VARIABLE_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(.*?)\s*(?:,\s*(\w+)\s*)?\)\s*$", re.S)


def iter_panels(panels):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def datasource_ok(ds):
    return isinstance(ds, dict) and ds.get("uid") in ("${datasource}", "$datasource")


def variable_uses(expr):
    for m in VARIABLE_RE.finditer(expr):
        yield m.group(1) or m.group(2) or m.group(3), m


def substitute(expr, variables, where, problems):
    """Replaces variables; dashboard variables must sit in `label=~"$var"` matchers."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            before = expr[:m.start()]
            after = expr[m.end():]
            if not re.search(r'[\w]+\s*=~\s*"$', before) or not after.startswith('"'):
                problems.append(f'{where}: ${name} must be used as label=~"${name}"')
            return ALL_VALUES
        problems.append(f"{where}: unknown variable ${name}")
        return m.group(0)
    return VARIABLE_RE.sub(repl, expr)


def metric_names(expr):
    """Metric names an expression selects (a conservative tokenizer, enough for our queries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def recording_rule_names(rules_dir):
    names = set()
    for f in sorted(os.listdir(rules_dir)):
        if f.endswith(".yml"):
            with open(os.path.join(rules_dir, f), encoding="utf-8") as fh:
                names.update(re.findall(r"^\s*-?\s*record:\s*(\S+)", fh.read(), re.M))
    return names


def check_dashboard(path, dash, known, problems, queries, uids):
    name = os.path.basename(path)
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dash:
            problems.append(f"{name}: no {key}")
            return
    if dash["uid"] in uids:
        problems.append(f"{name}: uid {dash['uid']} also used by {uids[dash['uid']]}")
    uids[dash["uid"]] = name
    if dash.get("id") is not None:
        problems.append(f"{name}: id must be null so that importing never overwrites another")
    if not isinstance(dash["schemaVersion"], int) or dash["schemaVersion"] < 36:
        problems.append(f"{name}: schemaVersion {dash['schemaVersion']} is older than 36")
    if "__inputs" in dash:
        problems.append(f"{name}: __inputs pins a data source; use the datasource variable")

    variables = {}
    for v in dash["templating"].get("list", []):
        variables[v.get("name")] = v
    ds_vars = [v for v in variables.values() if v.get("type") == "datasource"]
    if not any(v.get("name") == "datasource" and v.get("query") == "prometheus" for v in ds_vars):
        problems.append(f"{name}: no variable `datasource` of type datasource for prometheus")
    custom = {n for n, v in variables.items() if v.get("type") != "datasource"}

    for vname, v in variables.items():
        if v.get("type") != "query":
            continue
        where = f"{name} variable {vname}"
        if not datasource_ok(v.get("datasource")):
            problems.append(f"{where}: datasource is not ${{datasource}}")
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        m = LABEL_VALUES_RE.match(q or "")
        if not m:
            problems.append(f"{where}: query {q!r} is not label_values(...)")
            continue
        selector, label = m.group(1), m.group(2)
        if label is None:  # label_values(label): every series, nothing to parse
            continue
        if vname in {u for u, _ in variable_uses(selector)}:
            problems.append(f"{where}: refers to itself")
        queries.append({"dashboard": dash["uid"], "variable": vname, "expr": selector,
                        "query": substitute(selector, custom, where, problems)})

    ids = {}
    for p in iter_panels(dash["panels"]):
        pid = p.get("id")
        title = p.get("title", "")
        where = f"{name} panel {pid} {title!r}"
        if not isinstance(pid, int):
            problems.append(f"{where}: id is not an integer")
        elif pid in ids:
            problems.append(f"{where}: id also used by panel {ids[pid]!r}")
        else:
            ids[pid] = title
        if not title.strip():
            problems.append(f"{where}: no title")
        if p.get("type") == "row":
            continue  # rows only group panels: no description, data source or targets
        if not p.get("description", "").strip():
            problems.append(f"{where}: no description")
        if not datasource_ok(p.get("datasource")):
            problems.append(f"{where}: datasource is not ${{datasource}}")
        targets = p.get("targets", [])
        if not targets:
            problems.append(f"{where}: no targets")
        for t in targets:
            twhere = f"{where} target {t.get('refId')}"
            if "datasource" in t and not datasource_ok(t["datasource"]):
                problems.append(f"{twhere}: datasource is not ${{datasource}}")
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{twhere}: empty expr")
                continue
            query = substitute(expr, custom, twhere, problems)
            unknown = metric_names(query) - known
            if unknown:
                problems.append(f"{twhere}: unknown metrics {sorted(unknown)}")
            queries.append({"dashboard": dash["uid"], "panel_id": pid, "panel": title,
                            "ref_id": t.get("refId"), "instant": bool(t.get("instant")),
                            "expr": expr, "query": query})


def check_parse(promtool, queries, problems):
    """Every query must parse: promtool check rules on one recording rule per query."""
    def run(qs):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard_queries.rules.yml")
            with open(path, "w", encoding="utf-8") as f:
                f.write("groups:\n  - name: dashboard-queries\n    rules:\n")
                for i, q in enumerate(qs):
                    # A JSON string is a valid YAML double-quoted scalar.
                    f.write(f"      - record: dashboard_query_{i}\n")
                    f.write(f"        expr: {json.dumps(q['query'])}\n")
            r = subprocess.run([promtool, "check", "rules", path], capture_output=True,
                               text=True)
            return r.returncode == 0, (r.stdout + r.stderr).strip()

    ok, _ = run(queries)
    if ok:
        return
    for q in queries:  # name the culprits
        ok, out = run([q])
        if not ok:
            where = q["dashboard"] + (f" panel {q['panel_id']}" if "panel_id" in q
                                      else f" variable {q['variable']}")
            problems.append(f"{where}: {q['query']!r} does not parse: {out.splitlines()[-1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dashboards", default=os.path.join(ROOT, "deploy/grafana/dashboards"))
    ap.add_argument("--rules", default=os.path.join(ROOT, "deploy/prometheus/rules"))
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--queries-out", help="write the substituted queries here as JSON")
    ap.add_argument("--expected", help="fail unless the queries equal this JSON file's")
    ap.add_argument("--write-expected", help="write the queries to this file and succeed")
    args = ap.parse_args()

    problems, queries, uids = [], [], {}
    known = KNOWN_METRICS | recording_rule_names(args.rules)
    files = sorted(f for f in os.listdir(args.dashboards) if f.endswith(".json"))
    if not files:
        problems.append(f"no dashboards in {args.dashboards}")
    for f in files:
        path = os.path.join(args.dashboards, f)
        try:
            with open(path, encoding="utf-8") as fh:
                dash = json.load(fh)
        except (OSError, ValueError) as e:
            problems.append(f"{f}: not valid JSON: {e}")
            continue
        check_dashboard(path, dash, known, problems, queries, uids)
    if queries:
        check_parse(args.promtool, queries, problems)

    listing = json.dumps(queries, indent=2, ensure_ascii=False) + "\n"
    if args.queries_out:
        with open(args.queries_out, "w", encoding="utf-8") as fh:
            fh.write(listing)
    if args.write_expected:
        with open(args.write_expected, "w", encoding="utf-8") as fh:
            fh.write(listing)
    elif args.expected:
        with open(args.expected, encoding="utf-8") as fh:
            if json.load(fh) != queries:
                problems.append(f"{args.expected} is not the dashboards' queries: regenerate it "
                                f"with {sys.argv[0]} --write-expected {args.expected}")

    for p in problems:
        print(p)
    panels = sum(1 for q in queries if "panel_id" in q)
    print(f"{len(files)} dashboards, {panels} panel queries, {len(queries) - panels} variable "
          f"queries: {'FAILED' if problems else 'OK'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
