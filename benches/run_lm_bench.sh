#!/usr/bin/env bash
# Side-by-side decoder benchmark: medvqa (CPU backend) vs transformers on the CPU (2 threads) on
# the same ~100M-parameter Llama-shaped and Gemma-3-shaped random decoders, same 128-token prompt,
# 64 greedy tokens with the KV cache, in one run; prints the ratios.
# Usage: benches/run_lm_bench.sh [RUNS]
#
# Needs the parity venv (tools/parity/README.md), created when missing. The model folders (~440 MB
# each, f32) are generated once into target/lm-bench-models and are not committed.
# LM_BENCH_BIN: a bench binary already built instead of the release build.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${1:-3}"
VENV="${PARITY_VENV:-/tmp/parity-venv}"
PY="$VENV/bin/python"
MODELS="$ROOT/target/lm-bench-models"

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/tools/parity/requirements.txt"
fi
if [ ! -f "$MODELS/llama/model.safetensors" ]; then
  "$PY" "$ROOT/tools/parity/make_lm_fixtures.py" --big "$MODELS" >&2
fi

build_release() {
  echo "== building the Rust bench (release)" >&2
  (cd "$ROOT" && cargo build --release -p medvqa-model --bench lm_bench \
    --message-format=json-render-diagnostics) \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "lm_bench" and m.get("executable"):
        print(m["executable"])'
}
BENCH_BIN="${LM_BENCH_BIN:-$(build_release)}"
[ -n "$BENCH_BIN" ] || { echo "could not find the lm_bench executable" >&2; exit 1; }

OUT="$(mktemp)"
echo "== transformers, 2 threads" >&2
"$PY" "$ROOT/tools/parity/bench_torch_lm.py" "$MODELS" --threads 2 --runs "$RUNS" | tee -a "$OUT"
echo "== medvqa, CPU backend (flex), 2 threads" >&2
RAYON_NUM_THREADS=2 "$BENCH_BIN" "$MODELS" --device cpu --runs "$RUNS" | tee -a "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ref = {r["model"]: r for r in rows if r["engine"] == "pytorch"}
print(f"\n{'model':<8}{'engine':<10}{'prefill tok/s':>15}{'vs torch':>10}{'decode tok/s':>14}{'vs torch':>10}")
for r in rows:
    t = ref.get(r["model"])
    pr = f"{r['prefill_tokens_per_second'] / t['prefill_tokens_per_second']:.2f}x" if t else "-"
    dr = f"{r['decode_tokens_per_second'] / t['decode_tokens_per_second']:.2f}x" if t else "-"
    print(f"{r['model']:<8}{r['engine']:<10}{r['prefill_tokens_per_second']:>15.1f}{pr:>10}{r['decode_tokens_per_second']:>14.2f}{dr:>10}")
PY
