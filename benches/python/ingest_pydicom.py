"""pydicom + NumPy + Pillow half of the side-by-side ingest benchmark (benches/README.md).

Per file, the same steps as medvqa's `benches/ingest_bench.rs`: read the DICOM file
(pydicom.dcmread), decode the pixel data (Dataset.pixel_array), Modality LUT
(pydicom.pixels.apply_modality_lut), LINEAR VOI window (the file's first Window Center/Width,
else the fallback) to [0, 1] in float64, Pillow mode "F" bilinear resize to 448 x 448, normalise
with mean = std = 0.5 in float32, gray -> RGB, giving a float32 [3, 448, 448] that is dropped.

Subcommands:
  generate  write N synthetic CT slices (512 x 512, signed 16-bit, rescale, explicit VR LE)
  select    list the uncompressed and RLE single-frame CT/MR files of the shared fixtures
  bench     time the pipeline: 1 process and all cores (multiprocessing), best of --runs
  compare   run the pipeline on the first K files and compare with medvqa's dumped .npy
"""

import argparse
import csv
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# Soft-tissue window for files without one; the Rust side uses the same default.
FALLBACK_WINDOW = (40.0, 400.0)
SIZE = 448


def first_value(v):
    """First value of a possibly multi-valued DS attribute, as float."""
    if isinstance(v, pydicom.multival.MultiValue):
        v = v[0]
    return float(v)


def linear_window(x, c, w):
    """PS3.3 C.11.2.1.2.1 LINEAR with y in [0, 1]; width < 1 is a threshold at c - 0.5."""
    if w < 1.0:
        return (x > c - 0.5).astype(np.float32)
    y = (x - (c - 0.5)) / (w - 1.0) + 0.5
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def process(path, window=FALLBACK_WINDOW, size=SIZE):
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    hu = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        c, w = first_value(ds.WindowCenter), first_value(ds.WindowWidth)
    else:
        c, w = window
    disp = linear_window(hu, c, w)
    img = Image.fromarray(disp)  # float32 2D -> mode "F"
    small = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    norm = (small - np.float32(0.5)) / np.float32(0.5)
    return np.stack([norm, norm, norm])


def _work(path):
    out = process(path)
    # Only a scalar goes back: shipping the 2.4 MB array through a pipe is not ingest work.
    return out.shape[0]


def read_list(path):
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def cmd_bench(a):
    files = read_list(a.list)
    for p in files:  # page cache
        Path(p).read_bytes()
    procs_list = [os.cpu_count() if n == 0 else n for n in map(int, a.procs.split(","))]
    for procs in procs_list:
        if procs == 1:
            run = lambda: [_work(p) for p in files]  # noqa: E731
            pool = None
        else:
            pool = mp.get_context("fork").Pool(procs)
            chunk = max(1, len(files) // (procs * 8))
            run = lambda: pool.map(_work, files, chunksize=chunk)  # noqa: E731
        run()  # warm-up: imports of decoders, worker start-up
        best = float("inf")
        for _ in range(a.runs):
            t = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t)
        if pool is not None:
            pool.close()
            pool.join()
        print(
            f"RESULT side=pydicom threads={procs} files={len(files)} "
            f"best_s={best:.4f} files_per_s={len(files) / best:.2f}",
            flush=True,
        )
    if a.stages:
        stages(files)


def stages(files):
    t_read = t_decode = t_model = t_window = t_resize = 0.0
    for p in files:
        t0 = time.perf_counter()
        ds = pydicom.dcmread(p)
        t1 = time.perf_counter()
        hu = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
        t2 = time.perf_counter()
        if "WindowCenter" in ds and "WindowWidth" in ds:
            c, w = first_value(ds.WindowCenter), first_value(ds.WindowWidth)
        else:
            c, w = FALLBACK_WINDOW
        disp = linear_window(hu, c, w)
        tw = time.perf_counter()
        small = np.asarray(
            Image.fromarray(disp).resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32
        )
        tr = time.perf_counter()
        norm = (small - np.float32(0.5)) / np.float32(0.5)
        np.stack([norm, norm, norm])
        t3 = time.perf_counter()
        t_read += t1 - t0
        t_decode += t2 - t1
        t_model += t3 - t2
        t_window += tw - t2
        t_resize += tr - tw
    n = len(files)
    for name, t in [
        ("open+parse", t_read),
        ("decode+modality", t_decode),
        ("window+resize+rgb+normalise", t_model),
        ("of_which_window", t_window),
        ("of_which_resize", t_resize),
    ]:
        print(f"STAGE side=pydicom stage={name} ms_per_file={t * 1e3 / n:.3f}")


def cmd_compare(a):
    files = read_list(a.list)[: a.count]
    worst = 0.0
    for i, p in enumerate(files):
        ours = process(p)
        theirs = np.load(Path(a.dump) / f"{i}.npy")
        if ours.shape != theirs.shape:
            sys.exit(f"{p}: shape {theirs.shape} from medvqa, {ours.shape} from pydicom")
        d = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
        worst = max(worst, d)
        print(f"COMPARE file={p} max_abs_diff={d:.3g}")
    print(f"COMPARE files={len(files)} worst_max_abs_diff={worst:.3g}")
    if worst > a.tolerance:
        sys.exit(f"medvqa and pydicom disagree by {worst:.3g} > {a.tolerance}")


def cmd_generate(a):
    """CT-like axial slices: a water ellipse body with lungs, bone and noise, air outside,
    padding (-2000 stored) outside the circular field of view, as scanners write them."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    n = a.rows
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    yy = (yy - n / 2) / (n / 2)
    xx = (xx - n / 2) / (n / 2)
    series = generate_uid()
    study = generate_uid()
    frame_of_ref = generate_uid()
    for k in range(a.count):
        z = -k * 1.25
        s = 1.0 + 0.1 * np.sin(k / a.count * np.pi)  # body size varies along z
        hu = np.full((n, n), -1000.0)
        body = (xx / (0.85 * s)) ** 2 + (yy / (0.65 * s)) ** 2 <= 1
        hu[body] = 40.0
        for cx in (-0.35, 0.35):
            lung = ((xx - cx) / 0.25) ** 2 + ((yy + 0.05) / (0.4 * s)) ** 2 <= 1
            hu[lung] = -850.0
        spine = (xx / 0.08) ** 2 + ((yy - 0.45) / 0.08) ** 2 <= 1
        hu[spine] = 700.0
        hu += rng.normal(0.0, 12.0, size=hu.shape)
        stored = np.round(hu + 1024.0)  # RescaleIntercept -1024, slope 1
        stored[(xx**2 + yy**2) > 1.0] = -2000  # outside the reconstruction circle
        stored = np.clip(stored, -32768, 32767).astype(np.int16)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame_of_ref
        ds.Modality = "CT"
        ds.PatientName = "Bench^Phantom"
        ds.PatientID = "BENCH"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [500.0 / n, 500.0 / n]
        ds.SliceThickness = 1.25
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = n
        ds.Columns = n
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        # Two windows, mediastinum then lung: readers take the first.
        ds.WindowCenter = [40, -600]
        ds.WindowWidth = [400, 1500]
        ds.PixelData = stored.tobytes()
        ds.save_as(out / f"ct_{k:04d}.dcm", enforce_file_format=True)
    print(f"wrote {a.count} files to {out}")


def cmd_select(a):
    """Single-frame grayscale CT/MR files in uncompressed (little/big endian) or RLE syntaxes
    that pydicom decoded when the fixture index was made."""
    root = Path(a.fixtures)
    syntaxes = {"ExplicitVRLE", "ImplicitVRLE", "ExplicitVRBigEndian", "RLELossless"}
    picked = []
    for index in sorted(root.glob("*/_dicom_index.csv")):
        with open(index, newline="") as f:
            for r in csv.DictReader(f):
                if (
                    r["modality"] in ("CT", "MR")
                    and r["has_pixels"] == "yes"
                    and r["spp"] == "1"
                    and r["frames"] in ("", "0", "1")
                    and r["ts"] in syntaxes
                    and r["decode"].startswith("ok")
                ):
                    picked.append(str(index.parent / r["path"]))
    Path(a.out).write_text("\n".join(picked) + "\n")
    print(f"selected {len(picked)} files into {a.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--out", required=True)
    g.add_argument("--count", type=int, default=200)
    g.add_argument("--rows", type=int, default=512)
    g.add_argument("--seed", type=int, default=7)
    s = sub.add_parser("select")
    s.add_argument("--fixtures", required=True)
    s.add_argument("--out", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--list", required=True)
    b.add_argument("--procs", default="1,0", help="process counts to time, 0 = all cores")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--stages", action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("--list", required=True)
    c.add_argument("--dump", required=True)
    c.add_argument("--count", type=int, default=4)
    c.add_argument("--tolerance", type=float, default=1e-5)
    a = ap.parse_args()
    {"generate": cmd_generate, "select": cmd_select, "bench": cmd_bench, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
