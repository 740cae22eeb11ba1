#!/usr/bin/env bash
# Checks the agent's GPU readings on a real NVIDIA host: starts an already built agent on the
# driver's libnvidia-ml.so.1, puts a little load on GPU 0 when it can, polls the agent as the
# server does (GET /api/poll?metrics=1) and saves the replies, with nvidia-smi's own view, under
# $OUT (default ./gpu-check-out). Builds nothing.
#
#   FLEETWATCH_BIN=build/release/fleetwatch OUT=/tmp/out scripts/gpu-check.sh
#
# Without FLEETWATCH_BIN the first of build/release, build/bench, build/asan that holds a
# `fleetwatch` binary is used. Exits non-zero when the agent does not come up or a poll fails;
# the readings themselves are for a person (or a later script) to compare with nvidia-smi.q.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"

BIN=${FLEETWATCH_BIN:-}
if [[ -z "$BIN" ]]; then
  for candidate in build/release/fleetwatch build/bench/fleetwatch build/asan/fleetwatch; do
    if [[ -x "$candidate" ]]; then BIN=$candidate; break; fi
  done
fi
if [[ -z "$BIN" || ! -x "$BIN" ]]; then
  echo "gpu-check: no built fleetwatch binary (set FLEETWATCH_BIN)" >&2
  exit 2
fi

WORK=$(mktemp -d)
TOKEN=gpu-check-$$-$RANDOM
AGENT_PID=""
LOAD_PID=""
cleanup() {
  if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
  if [[ -n "$AGENT_PID" ]]; then
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

{
  echo "date: $(date -u +%FT%TZ)"
  echo "binary: $BIN"
  echo "kernel: $(uname -r)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,uuid \
    --format=csv,noheader || echo "nvidia-smi: not found"
} >"$OUT/host.txt" 2>&1

# The GPU load: a short CUDA matmul loop when PyTorch is there (a compute process NVML lists),
# else an nvidia-smi query loop (touches the driver, no compute process).
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  python3 - >"$OUT/load.log" 2>&1 <<'PY' &
import time, torch
x = torch.randn(4096, 4096, device="cuda:0")
end = time.time() + 60
while time.time() < end:
    y = x @ x
torch.cuda.synchronize()
PY
  LOAD_PID=$!
  echo "load: torch matmul on cuda:0" >>"$OUT/host.txt"
elif command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,utilization.gpu,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 500 >"$OUT/load.log" 2>&1 &
  LOAD_PID=$!
  echo "load: nvidia-smi query loop" >>"$OUT/host.txt"
else
  echo "load: none" >>"$OUT/host.txt"
fi

# The agent, on the real NVML (the default library name), plain HTTP on loopback.
mkdir -m 0700 "$WORK/data"
ROOT_FLAGS=()
if [[ $(id -u) -eq 0 ]]; then ROOT_FLAGS=(--allow-root-jobs --jobs-dir "$WORK/jobs"); fi
env -u FLEETWATCH_NVML_LIBRARY FLEETWATCH_AGENT_TOKEN="$TOKEN" \
  "$BIN" agent --host 127.0.0.1 --port 0 --no-tls --no-dcgm --data-dir "$WORK/data" \
  "${ROOT_FLAGS[@]}" >"$OUT/agent.log" 2>&1 &
AGENT_PID=$!

PORT=""
for _ in $(seq 1 100); do
  PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$OUT/agent.log" 2>/dev/null \
    | head -1 | sed 's/.*://' || true)
  [[ -n "$PORT" ]] && break
  kill -0 "$AGENT_PID" 2>/dev/null || break
  sleep 0.2
done
if [[ -z "$PORT" ]]; then
  echo "gpu-check: the agent did not come up; see $OUT/agent.log" >&2
  exit 1
fi

poll() {
  curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"
}
poll /api/inventory >"$OUT/inventory.json"
sleep 3  # let the load start
for i in 1 2 3; do
  poll '/api/poll?metrics=1' >"$OUT/poll-$i.json"
  sleep 2
done
# What one poll with readings costs the agent, as the server sees it (wall seconds per poll).
for _ in 1 2 3 4 5; do
  curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/api/poll?metrics=1"
done >"$OUT/poll-seconds.txt"
if command -v nvidia-smi >/dev/null; then nvidia-smi -q >"$OUT/nvidia-smi.q.txt" 2>&1 || true; fi

# A short summary for the log; the JSON files are the result.
python3 - "$OUT/poll-3.json" <<'PY' | tee "$OUT/summary.txt"
import json, sys
reply = json.load(open(sys.argv[1]))
for gpu in reply.get("gpus", []):
    keys = sorted(k for k in gpu if k not in ("index", "uuid"))
    print(f"GPU {gpu['index']} {gpu.get('uuid', '')}: " + ", ".join(
        f"{k}={json.dumps(gpu[k])}" if k in ("power_mw", "temperature_c", "util_percent",
                                              "energy_mj") else k for k in keys))
PY
echo "gpu-check: replies saved under $OUT"
