"""Writes the archive benches/run_archive_bench.sh encodes: CT series of 512 x 512 16-bit slices
(rescale -1024, stored in shuffled file order) and 1024 x 1024 12-bit radiographs (half of them
MONOCHROME1), explicit VR little endian, with a file window on the radiographs.

    python make_bench_archive.py OUT [--series 4] [--slices 32] [--radiographs 64] [--seed 0]

Pixel values are smooth random fields, so decoders and resizers do the work real images ask of
them. Seeded: the same arguments write the same files.
"""

import argparse
import os

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT = "1.2.840.10008.5.1.4.1.1.2"
CR = "1.2.840.10008.5.1.4.1.1.1"


def field(rng, shape, lo, hi):
    coarse = rng.random((shape[0] // 32 + 1, shape[1] // 32 + 1))
    img = np.kron(coarse, np.ones((32, 32)))[: shape[0], : shape[1]]
    img = img + 0.05 * rng.random(shape)
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    return (lo + img * (hi - lo)).astype(np.uint16)


def dataset(path, sop_class, modality, pixels, extra):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "BENCH^PHANTOM"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--radiographs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    for s in range(a.series):
        d = os.path.join(a.out, f"ct{s:02d}")
        os.makedirs(d, exist_ok=True)
        study, series = generate_uid(), generate_uid()
        for k, z in enumerate(rng.permutation(a.slices)):
            dataset(os.path.join(d, f"IM{k:04d}.dcm"), CT, "CT", field(rng, (512, 512), 0, 3000), {
                "StudyInstanceUID": study, "SeriesInstanceUID": series,
                "ImagePositionPatient": [0, 0, float(z) * 2.5],
                "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
                "PixelSpacing": [0.7, 0.7], "SliceThickness": 2.5,
                "RescaleSlope": 1, "RescaleIntercept": -1024, "InstanceNumber": int(z) + 1,
            })
    d = os.path.join(a.out, "xr")
    os.makedirs(d, exist_ok=True)
    for r in range(a.radiographs):
        dataset(os.path.join(d, f"xr{r:04d}.dcm"), CR, "CR", field(rng, (1024, 1024), 200, 3800), {
            "StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid(),
            "PhotometricInterpretation": "MONOCHROME1" if r % 2 else "MONOCHROME2",
            "WindowCenter": 2000, "WindowWidth": 3600, "PixelSpacing": [0.2, 0.2],
        })


if __name__ == "__main__":
    main()
