"""PyTorch CPU throughput of a vision encoder folder, the reference side of medvqa's benchmark.

Reads a folder written by `make_vision_fixtures.py --big DIR` (or any SigLIP / CLIP checkpoint
folder), runs the vision encoder on random pixel values with a fixed number of CPU threads and
prints one JSON object per batch size: images/s and seconds per batch (median of the timed runs).

    /tmp/parity-venv/bin/python tools/parity/bench_torch.py /tmp/parity-big --threads 2 --batch 1 8
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

import torch
import transformers


def load(folder):
    config = json.loads((folder / "config.json").read_text())
    classes = {"siglip_vision_model": transformers.SiglipVisionModel,
               "clip_vision_model": transformers.CLIPVisionModel,
               "siglip": transformers.SiglipModel, "clip": transformers.CLIPModel}
    cls = classes.get(config.get("model_type"))
    if cls is None:
        sys.exit(f"{folder / 'config.json'}: model_type {config.get('model_type')!r} is not a "
                 f"SigLIP or CLIP model")
    model = cls.from_pretrained(folder, dtype=torch.float32).eval()
    tower = model.vision_model if cls in (transformers.SiglipModel, transformers.CLIPModel) else model
    vc = config.get("vision_config", config)
    return tower, vc.get("image_size", 224)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=pathlib.Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per batch size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tower, size = load(args.folder)
    g = torch.Generator().manual_seed(0)
    for batch in args.batch:
        pv = torch.rand((batch, 3, size, size), generator=g) * 2 - 1
        times = []
        with torch.inference_mode():
            tower(pixel_values=pv)  # warm-up: first call allocates and picks kernels
            start = time.perf_counter()
            while time.perf_counter() - start < args.seconds or len(times) < 3:
                t0 = time.perf_counter()
                tower(pixel_values=pv)
                times.append(time.perf_counter() - t0)
        per_batch = statistics.median(times)
        print(json.dumps({"engine": "pytorch", "torch": torch.__version__,
                          "transformers": transformers.__version__, "threads": args.threads,
                          "batch": batch, "image_size": size, "runs": len(times),
                          "seconds_per_batch": round(per_batch, 4),
                          "images_per_second": round(batch / per_batch, 3)}))


if __name__ == "__main__":
    main()
