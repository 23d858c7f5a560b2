"""A MedGemma-4B-sized Gemma3ForConditionalGeneration with random bf16 weights, for measuring
medvqa's memory (peak RSS) and time on a model of the published size. Not a parity fixture:
the values are random and nothing is compared.

Sizes are google/medgemma-4b-it's (= gemma-3-4b-it's) config.json: text hidden 2560, 34 layers,
8 heads / 4 KV heads, head_dim 256, MLP 10240, vocab 262208, sliding window 1024 every 5 of 6
layers; SigLIP so400m vision tower at 896 px / patch 14 (4096 patches) without head; 256 image
tokens. Parameter names and shapes come from transformers itself, instantiated on the `meta`
device (no memory), and are written in the published (4.x) key layout. Weights are streamed
tensor by tensor into bf16 safetensors shards, so the script never holds more than one tensor.

    /tmp/parity-venv/bin/python tools/parity/make_big_vlm.py /tmp/medgemma-4b-random   # ~8.6 GB
"""

import json
import pathlib
import struct
import sys

import numpy as np
import torch
import transformers

SHARD_BYTES = 5 * 1024**3


def config():
    text = dict(model_type="gemma3_text", hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=262208,
                sliding_window=1024, rope_theta=1_000_000.0, rope_local_base_freq=10_000.0,
                rope_scaling={"rope_type": "linear", "factor": 8.0}, query_pre_attn_scalar=256,
                rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
                layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(34)])
    vision = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
                  num_hidden_layers=27, num_attention_heads=16, image_size=896, patch_size=14,
                  num_channels=3, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh", vision_use_head=False)
    return transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=256,
                                     image_token_index=262144, boi_token_index=255999,
                                     eoi_token_index=256000, tie_word_embeddings=True)


def legacy_name(name):
    # transformers 4.57's in-memory names → the published layout its save_pretrained writes.
    for new, old in [("model.language_model.", "language_model.model."),
                     ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")]:
        if name.startswith(new):
            return old + name[len(new):]
    return name


def bf16_bytes(shape, rng, norm):
    n = int(np.prod(shape))
    if norm:
        x = rng.standard_normal(n, dtype=np.float32) * 0.05  # Gemma norms are used as 1 + w
    else:
        x = rng.standard_normal(n, dtype=np.float32) * 0.02
    return (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config()
    with torch.device("meta"):
        model = transformers.Gemma3ForConditionalGeneration(cfg)
    params = [(legacy_name(n), tuple(p.shape)) for n, p in model.named_parameters() if n != "lm_head.weight"]
    total = sum(int(np.prod(s)) for _, s in params)
    print(f"{len(params)} tensors, {total / 1e9:.3f} B parameters", file=sys.stderr)

    # Plan shards, then write each: 8-byte header length, JSON header, raw bf16 data.
    shards, cur, size = [], [], 0
    for name, shape in params:
        nbytes = 2 * int(np.prod(shape))
        if cur and size + nbytes > SHARD_BYTES:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape, nbytes))
        size += nbytes
    shards.append(cur)
    rng = np.random.default_rng(20261122)
    weight_map = {}
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, shape, nbytes in shard:
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        hbytes = json.dumps(header, separators=(",", ":")).encode()
        hbytes += b" " * (-len(hbytes) % 8)
        with open(out / fname, "wb") as f:
            f.write(struct.pack("<Q", len(hbytes)))
            f.write(hbytes)
            for name, shape, _ in shard:
                f.write(bf16_bytes(shape, rng, norm="norm" in name))
        print(f"wrote {fname}", file=sys.stderr)
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 2 * total}, "weight_map": weight_map}, indent=2))
    cfg_json = cfg.to_dict()
    cfg_json["architectures"] = ["Gemma3ForConditionalGeneration"]
    cfg_json["dtype"] = "bfloat16"
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2))

    # A prompt as the processor makes it: text, boi, 256 image tokens, eoi, text.
    ids = [2, 105, 2364, 107] + [255999] + [262144] * 256 + [256000] + [1018, 603, 736, 106, 107, 105, 4368, 107]
    s = len(ids)
    ttype = [1 if t == 262144 else 0 for t in ids]
    pix = np.random.default_rng(1).uniform(-1, 1, size=(1, 3, 896, 896)).astype(np.float32)
    tensors = {"input_ids": (np.array([ids], dtype=np.int64), "I64"),
               "attention_mask": (np.ones((1, s), dtype=np.int64), "I64"),
               "token_type_ids": (np.array([ttype], dtype=np.int64), "I64"),
               "pixel_values": (pix, "F32")}
    header, offset, blobs = {}, 0, []
    for name, (arr, dt) in tensors.items():
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    hbytes = json.dumps(header).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    with open(out / "inputs.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)) + hbytes + b"".join(blobs))
    print(f"inputs: {s} tokens, pixel_values [1, 3, 896, 896]", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/medgemma-4b-random")
