#!/usr/bin/env bash
# Archive-encoding benchmark, one run, three engines on the same files and weights:
#   1. `medvqa encode-archive --unit image` (release): the whole pipeline, walk → decode → VOI →
#      processor → SigLIP-B/16-224 → shards + Parquet manifest;
#   2. the encoder alone on pre-decoded input (the vision_bench binary, random pixels of the same
#      shape and batch): the ceiling for 1 — their ratio says how well decoding hides behind
#      compute (target >= 0.9);
#   3. the Python pipeline a user would write (pydicom + Pillow SiglipImageProcessor + transformers,
#      torch DataLoader workers; tools/archive/bench_python_archive.py).
# Peak RSS of 1 and 3 from /usr/bin/time. Usage: benches/run_archive_bench.sh [THREADS]
#
# Needs the parity venv with pydicom (tools/archive/requirements-bench.txt; created when
# missing). The model (SigLIP-B/16-224-sized random weights, 372 MB) and the archive (4 CT series
# x 32 slices of 512 x 512 and 64 radiographs of 1024 x 1024, ~100 MB) are generated into target/.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
THREADS="${1:-2}"
BATCH=8
VENV="${PARITY_VENV:-/tmp/parity-venv}"
PY="$VENV/bin/python"
MODEL="$ROOT/target/vision-bench-model"
ARCHIVE="$ROOT/target/archive-bench/archive"
WORK="$ROOT/target/archive-bench"

if [ ! -x "$PY" ] || ! "$PY" -c "import pydicom, transformers" 2>/dev/null; then
  [ -x "$PY" ] || python3 -m venv "$VENV"
  (cd "$ROOT/tools/archive" && "$VENV/bin/pip" install -q -r requirements-bench.txt)
fi
if [ ! -f "$MODEL/model.safetensors" ]; then
  "$PY" "$ROOT/tools/parity/make_vision_fixtures.py" --big "$MODEL" >&2
fi
if [ ! -d "$ARCHIVE" ]; then
  "$PY" "$ROOT/tools/archive/make_bench_archive.py" "$ARCHIVE"
fi

echo "== building medvqa and the vision bench (release)" >&2
(cd "$ROOT" && cargo build --release -p medvqa-cli --bin medvqa >&2)
BENCH_BIN="${VISION_BENCH_BIN:-$(cd "$ROOT" && cargo build --release -p medvqa-model --bench vision_bench \
  --message-format=json-render-diagnostics | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "vision_bench" and m.get("executable"):
        print(m["executable"])')}"

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
rm -rf "$WORK/out"
echo "== medvqa encode-archive ($THREADS threads)" >&2
RAYON_NUM_THREADS="$THREADS" /usr/bin/time -v "$ROOT/target/release/medvqa" encode-archive "$ARCHIVE" \
  --model "$MODEL" --out "$WORK/out" --device cpu --batch "$BATCH" --jobs "$THREADS" 2> "$WORK/medvqa.err" || true
grep "medvqa encode-archive:" "$WORK/medvqa.err" | tail -1 >&2
python3 - "$WORK/medvqa.err" "$WORK/out/run.json" >> "$RESULTS" <<'PY'
import json, re, sys
err = open(sys.argv[1]).read()
run = json.load(open(sys.argv[2]))
wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", err)
h, m, s = (float(x) if x else 0.0 for x in wall.groups())
secs = h * 3600 + m * 60 + s
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
inner = re.search(r"in ([\d.]+) s \(([\d.]+) units/s", err)
print(json.dumps({"engine": "medvqa encode-archive", "units": run["rows"], "seconds_wall": secs,
                  "units_per_second": run["rows"] / secs, "units_per_second_run": float(inner.group(2)),
                  "peak_rss_mb": rss / 1024}))
PY
echo "== encoder alone, pre-decoded input ($THREADS threads, batch $BATCH)" >&2
RAYON_NUM_THREADS="$THREADS" "$BENCH_BIN" "$MODEL" --device cpu --seconds 30 --batch "$BATCH" \
  | python3 -c 'import json, sys
for l in sys.stdin:
    if l.startswith("{"):
        r = json.loads(l); print(json.dumps({"engine": "encoder alone", "units_per_second": r["images_per_second"]}))' >> "$RESULTS"
echo "== Python: pydicom + Pillow + transformers ($THREADS threads, $THREADS DataLoader workers)" >&2
/usr/bin/time -v "$PY" "$ROOT/tools/archive/bench_python_archive.py" "$ARCHIVE" "$MODEL" \
  --batch "$BATCH" --threads "$THREADS" --workers "$THREADS" > "$WORK/python.out" 2> "$WORK/python.err"
python3 - "$WORK/python.out" "$WORK/python.err" >> "$RESULTS" <<'PY'
import json, re, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
err = open(sys.argv[2]).read()
r["peak_rss_mb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
r["engine"] = "python pipeline"
print(json.dumps(r))
PY
python3 - "$RESULTS" <<'PY'
import json, sys
rows = {r["engine"]: r for r in map(json.loads, open(sys.argv[1]))}
m, e, p = rows["medvqa encode-archive"], rows["encoder alone"], rows["python pipeline"]
print(f"\n{'engine':<24}{'units/s':>10}{'peak RSS MB':>14}")
for r in (m, e, p):
    rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
    print(f"{r['engine']:<24}{r['units_per_second']:>10.3f}{rss:>14}")
print(f"\nmedvqa whole pipeline / encoder alone: {m['units_per_second'] / e['units_per_second']:.2f} "
      f"(run's own rate, model load excluded: {m['units_per_second_run'] / e['units_per_second']:.2f}); target >= 0.9")
print(f"medvqa / python pipeline: {m['units_per_second'] / p['units_per_second']:.2f}x "
      f"(python excludes its model load; medvqa's run rate: {m['units_per_second_run'] / p['units_per_second']:.2f}x)")
PY
