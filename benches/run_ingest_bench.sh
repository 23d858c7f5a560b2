#!/usr/bin/env bash
# Side-by-side ingest benchmark: medvqa vs pydicom + NumPy + Pillow on the same files and the
# same steps (benches/README.md). Usage: benches/run_ingest_bench.sh [RUNS]
#
# Sets up benches/.venv (pinned benches/python/requirements.txt), builds the Rust bench in
# release, generates 200 synthetic CT slices and selects the uncompressed/RLE CT/MR files of
# ../shared/fixtures/dicom (if present), checks that both sides compute the same arrays, then
# times each side (best of RUNS, default 3) on 1 thread/process and on all cores.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${1:-3}"
VENV="$ROOT/benches/.venv"
PY="$VENV/bin/python"
SCRIPT="$ROOT/benches/python/ingest_pydicom.py"
DATA="$ROOT/target/ingest-bench"
FIXTURES="${MEDVQA_FIXTURES:-$ROOT/../shared/fixtures}/dicom"

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r "$ROOT/benches/python/requirements.txt"

echo "== building the Rust bench (release)" >&2
BENCH_BIN="$(cd "$ROOT" && cargo build --release -p medvqa-ingest --bench ingest_bench \
  --message-format=json-render-diagnostics \
  | "$PY" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ingest_bench" and m.get("executable"):
        print(m["executable"])')"
if [ -z "$BENCH_BIN" ]; then
  echo "could not find the ingest_bench executable in cargo's output" >&2
  exit 1
fi

mkdir -p "$DATA"
if [ "$(ls "$DATA/ct512" 2>/dev/null | wc -l)" -ne 200 ]; then
  rm -rf "$DATA/ct512"
  "$PY" "$SCRIPT" generate --out "$DATA/ct512" --count 200 >&2
fi
ls "$DATA"/ct512/*.dcm > "$DATA/ct512.txt"
SETS="ct512"
if [ -d "$FIXTURES" ]; then
  "$PY" "$SCRIPT" select --fixtures "$FIXTURES" --out "$DATA/fixtures.txt" >&2
  SETS="$SETS fixtures"
else
  echo "SKIP: $FIXTURES absent; only the synthetic CT set is timed" >&2
fi

ALL="$(nproc)"
LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A FPS
for set in $SETS; do
  list="$DATA/$set.txt"
  n="$(wc -l < "$list")"
  echo "== $set: $n files" >&2
  xargs -d '\n' cat < "$list" > /dev/null  # page cache
  rm -rf "$DATA/dump-$set"
  out_rs="$("$BENCH_BIN" --list "$list" --threads "1,$ALL" --runs "$RUNS" \
    --dump "$DATA/dump-$set" --dump-count 6 --stages)"
  echo "$out_rs" >&2
  "$PY" "$SCRIPT" compare --list "$list" --dump "$DATA/dump-$set" --count 6 >&2
  out_py="$("$PY" "$SCRIPT" bench --list "$list" --procs "1,$ALL" --runs "$RUNS" --stages)"
  echo "$out_py" >&2
  while read -r tag side threads _files _best fps; do
    [ "$tag" = RESULT ] || continue
    FPS["$set/${side#side=}/${threads#threads=}"]="${fps#files_per_s=}"
  done <<< "$out_rs
$out_py"
done

echo
echo "files/s, best of $RUNS; $ALL cores ($(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load average before: $LOAD"
echo "GLIBC_TUNABLES=${GLIBC_TUNABLES:-} (both sides)"
printf '%-10s %14s %14s %14s %14s %10s %10s\n' set "medvqa 1t" "medvqa ${ALL}t" "pydicom 1p" "pydicom ${ALL}p" "ratio 1" "ratio $ALL"
for set in $SETS; do
  m1="${FPS[$set/medvqa/1]}"; mn="${FPS[$set/medvqa/$ALL]}"
  p1="${FPS[$set/pydicom/1]}"; pn="${FPS[$set/pydicom/$ALL]}"
  r1="$(awk -v a="$m1" -v b="$p1" 'BEGIN { printf "%.1fx", a / b }')"
  rn="$(awk -v a="$mn" -v b="$pn" 'BEGIN { printf "%.1fx", a / b }')"
  printf '%-10s %14s %14s %14s %14s %10s %10s\n' "$set" "$m1" "$mn" "$p1" "$pn" "$r1" "$rn"
done
