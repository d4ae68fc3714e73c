#!/usr/bin/env bash
# The CI performance gate: build base and head, verify head, gate head against base in one
# job (interleaved ABBA rounds of both builds), write a markdown summary and JSON report.
#
# Usage: ci/perf-gate.sh [--base-ref REV] [--mode wall|instructions] [-- EXTRA GATE ARGS...]
#   --base-ref REV   the base revision (default: $PERF_GATE_BASE, else origin/main, else main)
#   --mode M         wall (default) or instructions (valgrind callgrind)
#   EXTRA            passed to `gllm-bench gate` (e.g. --filter '^matmul' --rounds 40)
# Outputs in $PERF_GATE_OUT (default target/perf-gate): summary.md, gate.json, verify.json.
# If $GITHUB_STEP_SUMMARY is set the summary is appended to it.
#
# Exit codes (those of `gllm-bench gate`): 0 pass, 1 confirmed regression (or head fails
# verification against naive), 2 inconclusive (too noisy), 3 usage or harness error.
set -uo pipefail
cd "$(dirname "$0")/.."

base_ref="${PERF_GATE_BASE:-}"
mode=wall
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base-ref) base_ref="${2:?--base-ref needs a revision}"; shift 2 ;;
    --mode) mode="${2:?--mode needs wall or instructions}"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "perf-gate: unknown argument $1 (see --help)" >&2; exit 3 ;;
  esac
done
if [ -z "$base_ref" ]; then
  if git rev-parse --verify -q origin/main >/dev/null; then base_ref=origin/main; else base_ref=main; fi
fi
out="${PERF_GATE_OUT:-target/perf-gate}"
mkdir -p "$out" || exit 3

base_sha=$(git rev-parse --verify -q "$base_ref^{commit}") || {
  echo "perf-gate: base revision '$base_ref' not found (fetch it: git fetch origin main)" >&2; exit 3; }

echo "== build head ($(git rev-parse --short HEAD))"
cargo build --release -p gllm-bench || exit 3
head_bin="target/release/gllm-bench"

echo "== build base $base_ref (${base_sha:0:12}) in its own worktree and target dir"
src="$out/base-src"
git worktree remove --force "$src" >/dev/null 2>&1 || true
git worktree add --detach "$src" "$base_sha" >/dev/null || exit 3
cargo build --release -p gllm-bench --manifest-path "$src/Cargo.toml" \
  --target-dir "$out/base-target"
build_rc=$?
git worktree remove --force "$src" >/dev/null 2>&1 || true
[ $build_rc -eq 0 ] || { echo "perf-gate: building the base failed" >&2; exit 3; }
base_bin="$out/base-target/release/gllm-bench"

echo "== verify head against naive"
"$head_bin" --quiet verify --json > "$out/verify.json"
rc=$?
if [ $rc -ne 0 ]; then
  echo "perf-gate: head fails verification (exit $rc); no speed is reported for wrong code" >&2
  exit $rc
fi

echo "== gate ($mode): head vs $base_ref"
"$head_bin" gate --base-bin "$base_bin" --head-bin "$head_bin" --mode "$mode" \
  --markdown "$out/summary.md" --json "$out/gate.json" "${extra[@]}"
rc=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/summary.md" ]; then
  cat "$out/summary.md" >> "$GITHUB_STEP_SUMMARY"
fi
exit $rc
