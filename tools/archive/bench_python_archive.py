"""The Python pipeline a user would write instead of `medvqa encode-archive --unit image`:
pydicom reads each file, the modality and VOI transforms are applied (pydicom's own
apply_modality_lut / apply_voi_lut; CT without a window gets MedGemma 1.5's three-window RGB, as
medvqa does), Pillow-backed SiglipImageProcessor prepares the pixels, and transformers'
SiglipVisionModel encodes batches, with a torch DataLoader decoding in worker processes so that
decoding overlaps the model.

    python bench_python_archive.py ROOT MODEL [--batch 8] [--threads 2] [--workers 2]

Prints one JSON line: units, seconds (from the first file read to the last embedding, model
load excluded), units_per_second.
"""

import argparse
import json
import os
import time

import numpy as np
import pydicom
import torch
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from transformers import SiglipImageProcessor, SiglipVisionModel

# MedGemma 1.5's CT recipe: R [-1024, 1024], G [-135, 215], B [0, 80] HU.
CT_WINDOWS = [(-1024.0, 1024.0), (-135.0, 215.0), (0.0, 80.0)]


def to_uint8(x):
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def read(path):
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if ds.Modality == "CT" and "WindowCenter" not in ds:
        rgb = np.stack([np.clip((arr - lo) / (hi - lo), 0, 1) for lo, hi in CT_WINDOWS], axis=-1)
        return Image.fromarray(to_uint8(rgb), "RGB")
    if "WindowCenter" in ds:
        arr = apply_voi_lut(arr, ds).astype(np.float64)
    lo, hi = arr.min(), arr.max()
    arr = (arr - lo) / (hi - lo if hi > lo else 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = 1.0 - arr
    return Image.fromarray(to_uint8(arr), "L").convert("RGB")


class Files(torch.utils.data.Dataset):
    def __init__(self, files, processor):
        self.files, self.processor = files, processor

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        img = read(self.files[i])
        return self.processor(images=img, return_tensors="pt")["pixel_values"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.root) for f in fs if f.endswith(".dcm"))
    processor = SiglipImageProcessor.from_pretrained(a.model)
    model = SiglipVisionModel.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    loader = torch.utils.data.DataLoader(Files(files, processor), batch_size=a.batch, num_workers=a.workers)
    start = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for pixels in loader:
            out = model(pixel_values=pixels).pooler_output
            n += out.shape[0]
    secs = time.perf_counter() - start
    print(json.dumps({"engine": "python", "units": n, "seconds": secs, "units_per_second": n / secs}))


if __name__ == "__main__":
    main()
