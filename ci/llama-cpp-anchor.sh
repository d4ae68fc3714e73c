#!/usr/bin/env bash
# Measure the anchor, llama.cpp, on THIS machine: tokens/s of the real model (llama-bench) and
# the time of every op of its graph at the model's shapes (test-backend-ops perf on the ops
# test-export-graph-ops extracts from the model), so gllm-bench's figures can be quoted beside
# llama.cpp's measured on the same CPU rather than on another machine.
#
# llama.cpp's sources come from a registry that is reachable here: the source archive of the
# PyPI package llama-cpp-python==$VERSION vendors llama.cpp (ggml 0.25.3). The archive's sha256
# is checked; the build (CMake, -march=native, OpenMP) goes to a cache folder and is reused.
#
# Usage: ci/llama-cpp-anchor.sh [--model FILE] [--out DIR] [--threads "1 2"] [--reps N] [--ops-only|--bench-only]
#   --model    GGUF to measure (default models/SmolLM2-135M-Instruct.Q4_1.gguf)
#   --out      where the results go (default target/llama-cpp-anchor); written as temp + rename
#   --threads  thread counts for llama-bench (default "1 2"); the ops always run on 1 thread
#   --reps     llama-bench repetitions (default 5)
# Env: GLLM_CACHE_DIR (default ~/.cache/gllm-bench) holds the archive, sources and build.
# Writes: OUT/llama-bench.json (llama-bench -o json: pp64, pp512, tg128 per thread count),
#         OUT/graph-ops.txt (the model's ops: decode, prefill of 512 and of 64 tokens, the
#         latter also without flash attention), OUT/ops.sql (test-backend-ops perf),
#         OUT/anchor.md (both as tables), OUT/build.txt (version, compiler, flags, CPU).
# Exit: 0 done; 1 anything failed (message on stderr).
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
PACKAGE="llama-cpp-python"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT="$ROOT/target/llama-cpp-anchor"
THREADS="1 2"
REPS=5
DO_BENCH=1
DO_OPS=1

die() {
    echo "llama-cpp-anchor: error: $*" >&2
    exit 1
}
say() { echo "llama-cpp-anchor: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --model) MODEL="${2:?--model needs a file}"; shift 2 ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --threads) THREADS="${2:?--threads needs a list}"; shift 2 ;;
        --reps) REPS="${2:?--reps needs a number}"; shift 2 ;;
        --ops-only) DO_BENCH=0; shift ;;
        --bench-only) DO_OPS=0; shift ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -f "$MODEL" ]] || die "model $MODEL not found (ci/fetch-model.sh fetches the default one)"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$REPS'"
for t in $THREADS; do
    [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "--threads must list positive integers, got '$t'"
done
command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v c++ >/dev/null 2>&1 || die "a C++ compiler (c++) is required"

CACHE="${GLLM_CACHE_DIR:-$HOME/.cache/gllm-bench}/llama-cpp-$VERSION"
ARCHIVE="$CACHE/${PACKAGE//-/_}-$VERSION.tar.gz"
SRC="$CACHE/src"
BUILD="$CACHE/build"
mkdir -p "$CACHE" || die "cannot create $CACHE"

sha256_of() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# 1. the source archive, found in PyPI's simple index (PEP 691 JSON; the per-release JSON API is
#    not reachable from every registry mirror, and pip download would try to build the archive)
if [[ ! -f "$ARCHIVE" || "$(sha256_of "$ARCHIVE")" != "$SHA256" ]]; then
    say "downloading $PACKAGE==$VERSION (source archive) from PyPI"
    python3 - "$PACKAGE" "$VERSION" "$ARCHIVE.partial" <<'PY' || die "download failed (PyPI reachable?)"
import json, shutil, sys, urllib.request
package, version, out = sys.argv[1:4]
index = urllib.request.Request(f"https://pypi.org/simple/{package}/",
                               headers={"Accept": "application/vnd.pypi.simple.v1+json"})
with urllib.request.urlopen(index, timeout=60) as r:
    files = json.load(r)["files"]
name = f"{package.replace('-', '_')}-{version}.tar.gz"
sdist = [f for f in files if f["filename"] == name]
if not sdist:
    sys.exit(f"{package}=={version} has no source archive {name} on PyPI")
with urllib.request.urlopen(sdist[0]["url"], timeout=600) as r, open(out, "wb") as f:
    shutil.copyfileobj(r, f, 1 << 20)
PY
    have="$(sha256_of "$ARCHIVE.partial")"
    [[ "$have" == "$SHA256" ]] || { rm -f "$ARCHIVE.partial"; die "archive sha256 is $have, expected $SHA256"; }
    mv -f "$ARCHIVE.partial" "$ARCHIVE"
    rm -rf "$SRC"
fi

# 2. the vendored llama.cpp sources
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    say "extracting vendor/llama.cpp"
    rm -rf "$SRC.partial" && mkdir -p "$SRC.partial"
    tar xzf "$ARCHIVE" -C "$SRC.partial" --strip-components=3 "${PACKAGE//-/_}-$VERSION/vendor/llama.cpp" \
        || die "extracting $ARCHIVE failed"
    rm -rf "$SRC" && mv "$SRC.partial" "$SRC"
fi

# 3. CMake (from PyPI when the system has none) and the build
if ! command -v cmake >/dev/null 2>&1; then
    say "installing cmake from PyPI (pip install --user cmake)"
    python3 -m pip install --user --quiet --disable-pip-version-check cmake || die "pip install cmake failed"
    export PATH="$HOME/.local/bin:$PATH"
fi
TARGETS=(llama-bench test-backend-ops test-export-graph-ops)
if [[ ! -x "$BUILD/bin/llama-bench" || ! -x "$BUILD/bin/test-backend-ops" || ! -x "$BUILD/bin/test-export-graph-ops" ]]; then
    say "building ${TARGETS[*]} (Release, GGML_NATIVE, OpenMP): several minutes on 2 cores"
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        >"$CACHE/cmake.log" 2>&1 || die "cmake configure failed (see $CACHE/cmake.log)"
    cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}" >"$CACHE/build.log" 2>&1 \
        || die "build failed (see $CACHE/build.log)"
fi

# 4. measure, into a temporary folder renamed into place at the end
mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp -d "$(dirname "$OUT")/.anchor.XXXXXX")" || die "cannot create a temporary folder"
trap 'rm -rf "$TMP"' EXIT
{
    echo "llama.cpp vendored by $PACKAGE==$VERSION (ggml $(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$SRC/ggml/CMakeLists.txt" | paste -sd.))"
    echo "build: Release, GGML_NATIVE=ON (-march=native), OpenMP; $(c++ --version | head -1)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(nproc) cores;" \
        "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512_vnni|avx_vnni)$' | paste -sd' ')"
    echo "model: $(basename "$MODEL") (sha256 $(sha256_of "$MODEL"))"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$TMP/build.txt"

if [[ $DO_BENCH -eq 1 ]]; then
    say "llama-bench: pp64, pp512, tg128 at threads ${THREADS// /,}, $REPS repetitions"
    "$BUILD/bin/llama-bench" -m "$MODEL" -p 64,512 -n 128 -t "${THREADS// /,}" -r "$REPS" -o json \
        >"$TMP/llama-bench.json" 2>"$TMP/llama-bench.log" || die "llama-bench failed (see $TMP/llama-bench.log)"
fi
if [[ $DO_OPS -eq 1 ]]; then
    # three graphs, each with a decode step over 512 positions: a 512-token prefill (llama-bench's
    # pp512), a 64-token one (pp64, and the shape of gllm-bench's prefill cases) and the 64-token
    # one without flash attention (its KQ product, SOFT_MAX and KQV product, beside gllm-bench's
    # softmax and non-flash attention); ops they share are listed once
    say "test-export-graph-ops: the model's ops (prefill of 512 and of 64 tokens, without flash attention too; one decode token, 512 positions)"
    : >"$TMP/graph-ops.all"
    for graph in "-ub 512" "-ub 64" "-ub 64 -fa off"; do
        # shellcheck disable=SC2086 # $graph is a list of arguments
        "$BUILD/bin/test-export-graph-ops" -m "$MODEL" -c 512 $graph -o "$TMP/graph-ops.one" \
            >>"$TMP/export.log" 2>&1 || die "test-export-graph-ops $graph failed (see $TMP/export.log)"
        cat "$TMP/graph-ops.one" >>"$TMP/graph-ops.all"
    done
    # a prefill graph projects all its tokens onto the vocabulary (1.1 s a run for 512); a prompt
    # needs the last token's logits only, which the decode graph's product already measures
    awk '!seen[$0]++ && !($NF == "result_output" && $4 != 1)' "$TMP/graph-ops.all" >"$TMP/graph-ops.txt"
    rm -f "$TMP/graph-ops.one" "$TMP/graph-ops.all"
    say "test-backend-ops perf on those ops (CPU backend, 1 thread)"
    "$BUILD/bin/test-backend-ops" perf -b CPU --test-file "$TMP/graph-ops.txt" --output sql \
        >"$TMP/ops.sql" 2>"$TMP/ops.log" || die "test-backend-ops failed (see $TMP/ops.log)"
fi
python3 "$ROOT/ci/anchor_summary.py" "$TMP" >"$TMP/anchor.md" || die "summarizing failed"
rm -rf "$OUT" && mv "$TMP" "$OUT"
trap - EXIT
cat "$OUT/anchor.md"
say "results in $OUT"
