#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, JOBS of them at a time (fuzz/README.md).
#   fuzz/run.sh BUILD_DIR SECONDS [JOBS]
# Each target starts from its checked-in seeds (fuzz/corpus/<target>, read only) and from what
# earlier runs found (BUILD_DIR/work/<target>, where new inputs go: never into the tree).
# Crashes are written as BUILD_DIR/work/<target>-crash-*; the output of each run is in
# BUILD_DIR/work/<target>.log. Exits non-zero when a target found something.
set -euo pipefail

build_dir=$1
seconds=$2
jobs=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
targets=(dcgm exposition run_config fleet_config agent_reply http_request)

run_one() {
  local target=$1
  local work="$build_dir/work/$target"
  mkdir -p "$work"
  local args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
              -artifact_prefix="$build_dir/work/$target-")
  local dict="$here/$target.dict"
  case "$target" in run_config | fleet_config) dict="$here/config.dict" ;; esac
  [ -f "$dict" ] && args+=(-dict="$dict")
  if "$build_dir/fuzz/fuzz_$target" "${args[@]}" "$work" "$here/corpus/$target" \
      >"$build_dir/work/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$build_dir/work/$target.log" |
      tail -1 | sed -E 's/ +(lim|MS|L):.*//')"
  else
    echo "fuzz $target: FAILED, see $build_dir/work/$target.log" >&2
    tail -n 30 "$build_dir/work/$target.log" >&2
    return 1
  fi
}
export -f run_one
export build_dir seconds here

printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
