#!/usr/bin/env bash
# The database load of sharing what /metrics renders between replicas (docs/scale-out.md "/metrics
# on every replica"): a private PostgreSQL, HOSTS simulated hosts whose polls carry dcgm-exporter
# text (~100 KB each, fleetwatch-sim-agents --dcgm), REPLICAS `fleetwatch server` replicas with
# /metrics on (poll 1 s, metrics every 10 s: the defaults), for SECONDS. Prints each replica's own
# account (its "shared render state" log lines, one per 60 s resync) and PostgreSQL's counters of
# the database over the measured stretch (after a 30 s warm-up).
#
# usage: bench/shared_render_load.sh FLEETWATCH SIM_AGENTS PG_TOOL [HOSTS] [REPLICAS] [SECONDS]
#   e.g. bench/shared_render_load.sh build/asan/fleetwatch build/bench/bench/fleetwatch-sim-agents \
#        build/asan/tests/support/fleetwatch-test-postgres 100 2 150
set -euo pipefail
fw=$(realpath "$1") sim=$(realpath "$2") pgtool=$(realpath "$3")
hosts=${4:-100} replicas=${5:-2} seconds=${6:-150}
token=admin-token-for-the-load-benchmark-0123
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$pgtool" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$pgtool" start "$work/pg" >/dev/null
port=$(sed -n 's/^port=//p' "$work/pg")
psql "postgresql://fleetwatch@127.0.0.1:$port/postgres" -qc "CREATE DATABASE load"
url="postgresql://fleetwatch@127.0.0.1:$port/load"
stats() {
  psql "$url" -Atc "SELECT xact_commit, tup_returned + tup_fetched, tup_inserted + tup_updated,
    (SELECT COALESCE(n_tup_upd + n_tup_ins, 0) FROM pg_stat_user_tables WHERE relname = 'host_dcgm')
    FROM pg_stat_database WHERE datname = 'load'"
}

"$sim" --hosts "$hosts" --jobs-per-host 8 --preload-jobs 0 --token sim-token --first-port 0 \
  --ports-file "$work/ports" --dcgm >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do [[ -f $work/ports ]] && break; sleep 0.1; done

server_ports=()
for r in $(seq "$replicas"); do
  mkdir -p "$work/home$r"
  HOME="$work/home$r" FLEETWATCH_DATABASE_URL="$url" \
    FLEETWATCH_ENCRYPTION_KEY=$(printf 'a%.0s' $(seq 64)) FLEETWATCH_SERVER_ADMIN_TOKEN="$token" \
    DSTACK_ENABLE_PROMETHEUS_METRICS= FLEETWATCH_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 \
    "$fw" server --host 127.0.0.1 --port 0 --data-dir "$work/data$r" --no-local-fleet \
    >"$work/server$r.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do
    grep -q "fleetwatch server listening on" "$work/server$r.log" && break
    sleep 0.1
  done
  server_ports+=("$(sed -n 's/^fleetwatch server listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' \
    "$work/server$r.log" | head -n 1)")
  if [[ $r == 1 ]]; then
    {
      printf 'type: fleet\nname: sim\nssh_config:\n  tls: false\n  token: sim-token\n  hosts:\n'
      while read -r p; do printf '    - hostname: 127.0.0.1\n      port: %s\n' "$p"; done <"$work/ports"
    } >"$work/fleet.yml"
    curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' \
      --data-binary @"$work/fleet.yml" "http://127.0.0.1:${server_ports[0]}/api/project/main/fleets"
  fi
done

sleep 30
before=$(stats)
start=$(date +%s)
sleep "$seconds"
after=$(stats)
elapsed=$(($(date +%s) - start))
texts=$(psql "$url" -Atc "SELECT COUNT(*), COALESCE(AVG(length(dcgm_text)), 0)::bigint FROM host_dcgm")
echo "hosts $hosts, replicas $replicas, measured ${elapsed} s; host_dcgm rows, mean text bytes: $texts"
for r in $(seq "$replicas"); do
  echo "replica $r: $(grep -c 'holds' "$work/server$r.log") lease lines; last: $(grep 'holds' "$work/server$r.log" | tail -n 1 | sed 's/.*: holds/holds/')"
  grep "shared render state" "$work/server$r.log" | sed "s/^/  /"
done
pgdir=$(sed -n 's/^dir=//p' "$work/pg")
echo "postgres: $(grep -c 'could not serialize access' "$pgdir/postgres.log" || true) serialization failures (retried) in all"
paste -d' ' <(echo "$before" | tr '|' '\n') <(echo "$after" | tr '|' '\n') |
  awk -v s="$elapsed" 'BEGIN { split("commits/s rows-read/s rows-written/s host_dcgm-writes/s", n, " ") }
    { printf "postgres %s: %.1f\n", n[NR], ($2 - $1) / s }'
