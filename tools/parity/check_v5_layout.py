"""Checks the parity fixtures against transformers 5.x (requirements-v5.txt).

make_vision_fixtures.py runs on transformers 4.x and derives the 5.x key layout by renaming.
This script confirms, with 5.x itself, that
  1. a vision-only model saved by 5.x has exactly the keys of our `*_v5` folders' layout
     (no `vision_model.` prefix) and a two-tower model keeps the 4.x keys;
  2. every fixture folder (both layouts, sharded, f16/bf16, two-tower) loads in 5.x with no
     missing or unexpected tensor and reproduces expected*.safetensors.

    python3 -m venv /tmp/parity-venv5
    /tmp/parity-venv5/bin/pip install -r tools/parity/requirements-v5.txt
    /tmp/parity-venv5/bin/python tools/parity/check_v5_layout.py
"""

import json
import pathlib
import sys
import tempfile

import safetensors
import safetensors.torch
import torch
import transformers

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates/model/tests/fixtures/parity"
# transformers 5.x uses a different (but equivalent) attention code path; the outputs agree to
# float32 rounding, not bit for bit.
TOL = 1e-5


def saved_keys(model):
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        keys = set()
        for f in pathlib.Path(d).glob("*.safetensors"):
            with safetensors.safe_open(str(f), "pt") as st:
                keys |= set(st.keys())
    return keys


def folder_keys(folder):
    keys = set()
    for f in folder.glob("model*.safetensors"):
        with safetensors.safe_open(str(f), "pt") as st:
            keys |= set(st.keys())
    return keys


def vision_outputs(model, pv, interpolate):
    with torch.no_grad():
        two_tower = isinstance(model, (transformers.SiglipModel, transformers.CLIPModel))
        tower = model.vision_model if two_tower else model
        out = tower(pixel_values=pv, output_hidden_states=True,
                    interpolate_pos_encoding=interpolate)
        res = {"last_hidden_state": out.last_hidden_state}
        if out.hidden_states is not None:
            res["hidden_states"] = torch.stack(out.hidden_states)
        if out.pooler_output is not None:
            res["pooler_output"] = out.pooler_output
        if isinstance(model, transformers.CLIPModel):
            res["image_embeds"] = model.visual_projection(out.pooler_output)
    return res


def main():
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failures = []
    manifest = json.loads((FIXTURES / "manifest.json").read_text())

    # 1. What 5.x itself writes, next to what our folders hold.
    for entry in manifest["models"]:
        folder = FIXTURES / entry["name"]
        cls = getattr(transformers, entry["class"])
        config = cls.config_class.from_pretrained(folder)
        native = saved_keys(cls(config))
        ours = folder_keys(folder)
        if entry["layout"] == "v5" and native != ours:
            failures.append(f"{entry['name']}: 5.x saves {sorted(native ^ ours)[:4]} differently")
        same = native == ours
        print(f"{entry['name']:24s} layout {entry['layout']}: 5.x save_pretrained keys "
              f"{'==' if same else '!='} fixture keys"
              + ("" if same else f" (e.g. 5.x {sorted(native - ours)[:1]}, fixture {sorted(ours - native)[:1]})"))

    # 2. Every folder loads cleanly and reproduces the expected outputs.
    for entry in manifest["models"]:
        folder = FIXTURES / entry["name"]
        cls = getattr(transformers, entry["class"])
        model, info = cls.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
        model.eval()
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if bad:
            failures.append(f"{entry['name']}: loading info {bad}")
        for case in entry["cases"]:
            pv = safetensors.torch.load_file(str(folder / case["inputs"]))["pixel_values"]
            want = safetensors.torch.load_file(str(folder / case["expected"]))
            got = vision_outputs(model, pv, case["interpolate_pos_encoding"])
            for k, v in got.items():
                diff = (v.float() - want[k]).abs().max().item()
                if diff > TOL:
                    failures.append(f"{entry['name']}/{case['expected']}: {k} max abs {diff:.3g}")
                print(f"{entry['name']:24s} {case['expected']:33s} {k:18s} max abs {diff:.2e}")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("all fixtures load in transformers 5.x and match")


if __name__ == "__main__":
    main()
