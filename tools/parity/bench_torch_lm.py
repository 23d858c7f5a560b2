"""PyTorch CPU prefill and decode throughput of decoder folders, the reference side of medvqa's
language-model benchmark.

Reads the folders `make_lm_fixtures.py --big DIR` writes (DIR/llama, DIR/gemma3; or any
*ForCausalLM folder with an `inputs.safetensors`), and for each prints one JSON object:

- prefill: one forward pass over the prompt (`input_ids` [1, 128] from inputs.safetensors,
  KV cache on, as generate's first step), median seconds over the timed runs -> tokens/s;
- decode: greedy decoding of 64 new tokens, one token per forward pass with the KV cache
  (the loop generate() runs, without its logits processors), median seconds per run -> new
  tokens/s. The greedy tokens are compared with the folder's `expected.safetensors`.

    /tmp/parity-venv/bin/python tools/parity/bench_torch_lm.py /tmp/lm-big --threads 2
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

import safetensors.torch
import torch
import transformers


def folders(root):
    if (root / "config.json").exists():
        return [root]
    found = sorted(p.parent for p in root.glob("*/config.json"))
    if not found:
        sys.exit(f"{root}: no config.json in it or in its subfolders")
    return found


def load(folder, attn):
    config = json.loads((folder / "config.json").read_text())
    arch = (config.get("architectures") or [None])[0]
    cls = getattr(transformers, arch or "", None)
    if cls is None or not arch.endswith("ForCausalLM"):
        sys.exit(f"{folder / 'config.json'}: architectures {arch!r} is not a *ForCausalLM")
    return cls.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn).eval()


def prefill(model, ids):
    return model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)


def decode(model, ids, new_tokens):
    """Greedy decoding with the KV cache; returns (new token ids [1, N], seconds of the N
    decode steps, prefill excluded). The first new token comes from the prefill's logits."""
    mask = torch.ones_like(ids)
    out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    past = out.past_key_values
    tokens = [out.logits[:, -1].argmax(-1)]
    t0 = time.perf_counter()
    for _ in range(new_tokens - 1):
        mask = torch.cat([mask, torch.ones((1, 1), dtype=mask.dtype)], dim=1)
        out = model(input_ids=tokens[-1][:, None], attention_mask=mask, past_key_values=past,
                    use_cache=True)
        past = out.past_key_values
        tokens.append(out.logits[:, -1].argmax(-1))
    return torch.stack(tokens, dim=1), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of prefill and of decode")
    ap.add_argument("--attn", default="sdpa",
                    help="transformers attn_implementation (default: %(default)s, its fastest on CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for folder in folders(args.dir):
        model = load(folder, args.attn)
        inputs = safetensors.torch.load_file(str(folder / "inputs.safetensors"))
        ids = inputs["input_ids"][:1]
        expected_file = folder / "expected.safetensors"
        with torch.inference_mode():
            prefill(model, ids)  # warm-up: first call allocates and picks kernels
            pre = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                prefill(model, ids)
                pre.append(time.perf_counter() - t0)
            dec, tokens = [], None
            for _ in range(args.runs):
                tokens, seconds = decode(model, ids, args.new_tokens)
                dec.append(seconds)
        matches = None
        if expected_file.exists():
            want = safetensors.torch.load_file(str(expected_file)).get("generated_ids")
            if want is not None:
                n = min(want.shape[1], tokens.shape[1])
                matches = bool(torch.equal(want[:1, :n], tokens[:, :n]))
        p, d = statistics.median(pre), statistics.median(dec)
        print(json.dumps({
            "engine": "pytorch", "model": folder.name, "torch": torch.__version__,
            "transformers": transformers.__version__, "attn": args.attn,
            "threads": args.threads,
            "parameters": sum(x.numel() for x in model.parameters()),
            "prompt_tokens": ids.shape[1], "new_tokens": args.new_tokens, "runs": args.runs,
            "prefill_seconds": round(p, 4), "prefill_tokens_per_second": round(ids.shape[1] / p, 2),
            # new_tokens - 1 forward passes: the first new token comes from the prefill
            "decode_seconds": round(d, 4),
            "decode_tokens_per_second": round((args.new_tokens - 1) / d, 2),
            "greedy_matches_expected": matches}), flush=True)


if __name__ == "__main__":
    main()
