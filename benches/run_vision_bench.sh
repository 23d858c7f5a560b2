#!/usr/bin/env bash
# Side-by-side vision-encoder benchmark: medvqa (each backend) vs PyTorch CPU (2 threads) on the
# same SigLIP-B/16-224-sized random weights and the same input size, in one run; prints the
# ratios. Usage: benches/run_vision_bench.sh [SECONDS_PER_CASE]
#
# Needs the parity venv (tools/parity/README.md: torch 2.15.0, transformers 4.57.6), which it
# creates when missing (~5.6 GB of wheels). The model folder (372 MB) is generated once into
# target/vision-bench-model and is not committed. WGPU runs batch 1 only: on the software
# Vulkan driver (lavapipe) one ViT-B/16 image takes minutes; on a real GPU pass MEDVQA_WGPU_BATCHES="1 8".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_CASE="${1:-20}"
VENV="${PARITY_VENV:-/tmp/parity-venv}"
PY="$VENV/bin/python"
MODEL="$ROOT/target/vision-bench-model"
WGPU_BATCHES="${MEDVQA_WGPU_BATCHES:-1}"

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/tools/parity/requirements.txt"
fi
if [ ! -f "$MODEL/model.safetensors" ]; then
  "$PY" "$ROOT/tools/parity/make_vision_fixtures.py" --big "$MODEL" >&2
fi

# VISION_BENCH_BIN: a bench binary already built (e.g. `cargo test --bench vision_bench --no-run`,
# test profile with dependencies at opt-level 2) instead of the release build.
build_release() {
  echo "== building the Rust bench (release)" >&2
  (cd "$ROOT" && cargo build --release -p medvqa-model --bench vision_bench \
    --message-format=json-render-diagnostics) \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "vision_bench" and m.get("executable"):
        print(m["executable"])'
}
BENCH_BIN="${VISION_BENCH_BIN:-$(build_release)}"
[ -n "$BENCH_BIN" ] || { echo "could not find the vision_bench executable" >&2; exit 1; }

OUT="$(mktemp)"
echo "== PyTorch, 2 threads" >&2
"$PY" "$ROOT/tools/parity/bench_torch.py" "$MODEL" --threads 2 --batch 1 8 --seconds "$SECONDS_PER_CASE" | tee -a "$OUT"
echo "== medvqa, CPU backend (flex)" >&2
RAYON_NUM_THREADS=2 "$BENCH_BIN" "$MODEL" --device cpu --seconds "$SECONDS_PER_CASE" --batch 1 8 | tee -a "$OUT"
echo "== medvqa, WGPU" >&2
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" "$BENCH_BIN" "$MODEL" --device wgpu --seconds 0 --batch $WGPU_BATCHES | tee -a "$OUT" \
  || echo "(no WGPU adapter: skipped)" >&2

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
torch = {r["batch"]: r["images_per_second"] for r in rows if r["engine"] == "pytorch"}
print(f"\n{'engine':<12}{'device':<48}{'batch':>6}{'img/s':>10}{'vs torch':>10}")
for r in rows:
    ref = torch.get(r["batch"])
    ratio = f"{r['images_per_second'] / ref:.2f}x" if ref else "-"
    dev = r.get("device", f"cpu, {r['threads']} threads")
    print(f"{r['engine']:<12}{dev[:46]:<48}{r['batch']:>6}{r['images_per_second']:>10.3f}{ratio:>10}")
PY
rm -f "$OUT"
