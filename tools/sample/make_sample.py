"""Writes the bundled sample study under assets/sample/: a small chest-CT phantom series and a
chest radiograph computed from the same phantom, as real DICOM with correct geometry.

Known truth, so a user (and a test) can check what `medvqa ingest` makes of it:
- CT: 12 axial slices of 64 x 64, pixel spacing 0.7 mm, slice spacing 2.5 mm, stored int16 with
  Rescale Intercept -1024, Slope 1 (HU = stored - 1024); air -1000 HU, fat -100, soft tissue 40,
  lungs -850, a 30 HU nodule (radius 5 mm) in the patient's right lung, spine 700 HU.
  Files are written with shuffled names and Instance Numbers that do not follow position, and
  the series is stored in descending z: ingest must still sort along the slice normal.
- CR: a 96 x 64 MONOCHROME1 projection (sum of attenuation front to back) with a window.

Run: python3 -m pip install -r tools/sample/requirements.txt && python3 tools/sample/make_sample.py
Deterministic: the same bytes every run (fixed UIDs, dates and seed).
"""

import os
import random

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "sample")
ROOT = "1.2.826.0.1.3680043.10.1561"  # medvqa sample UID root (not a registered org root)
STUDY = ROOT + ".1"
CT_SERIES = ROOT + ".1.1"
CR_SERIES = ROOT + ".1.2"

N, ROWS, COLS = 12, 64, 64
PS, DZ = 0.7, 2.5


def phantom_hu(z_index):
    """HU of one axial slice; z_index 0 is the most inferior."""
    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    cx, cy = (COLS - 1) / 2, (ROWS - 1) / 2
    hu = np.full((ROWS, COLS), -1000.0)
    body = ((x - cx) / 28) ** 2 + ((y - cy) / 22) ** 2 <= 1
    inner = ((x - cx) / 26) ** 2 + ((y - cy) / 20) ** 2 <= 1
    hu[body] = -100.0  # subcutaneous fat
    hu[inner] = 40.0  # soft tissue
    # Lungs: the patient's right is image left in an axial slice (DICOM LPS, column -> Left).
    for side in (-1, 1):
        lung = ((x - (cx + side * 12)) / 9) ** 2 + ((y - cy + 2) / 13) ** 2 <= 1
        hu[lung] = -850.0
    spine = (x - cx) ** 2 + (y - (cy + 15)) ** 2 <= 16
    hu[spine] = 700.0
    # Nodule in the right lung (image left), centred on slice 6, radius 5 mm.
    zc = 6
    dz = (z_index - zc) * DZ
    r2 = ((x - (cx - 12)) * PS) ** 2 + ((y - cy) * PS) ** 2 + dz**2
    hu[r2 <= 25.0] = 30.0
    return hu


def base(modality, series, number, sop):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series
    ds.Modality = modality
    ds.BodyPartExamined = "CHEST"
    ds.PatientName = "PHANTOM^CHEST"
    ds.PatientID = "MEDVQA-SAMPLE"
    ds.StudyDate = "20260101"
    ds.SeriesNumber = number
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(1561)
    names = [f"IM{n:04d}.dcm" for n in rng.sample(range(1000, 9999), N)]
    instance = rng.sample(range(1, N + 1), N)
    volume = []
    for k in range(N):
        hu = phantom_hu(k)
        volume.append(hu)
        ds = base("CT", CT_SERIES, 1, f"{CT_SERIES}.{k + 1}")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows, ds.Columns = ROWS, COLS
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelRepresentation = 1
        ds.PixelSpacing = [PS, PS]
        ds.SliceThickness = DZ
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        x0, y0 = -(COLS - 1) / 2 * PS, -(ROWS - 1) / 2 * PS
        ds.ImagePositionPatient = [round(x0, 4), round(y0, 4), round(-100.0 + k * DZ, 4)]
        ds.InstanceNumber = instance[k]
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = -600
        ds.WindowWidth = 1500
        ds.PixelData = (hu + 1024).astype("<i2").tobytes()
        # Stored in descending z order of file names: position decides, not names.
        os.makedirs(os.path.join(OUT, "ct"), exist_ok=True)
        ds.save_as(os.path.join(OUT, "ct", names[N - 1 - k]), enforce_file_format=True)

    # Radiograph: attenuation (HU + 1000, >= 0) summed front to back (along rows of each slice
    # = the y axis), one row per slice, upsampled 8x in z; MONOCHROME1 (bright = low value).
    vol = np.stack(volume)  # [z, y, x]
    mu = np.clip(vol + 1000.0, 0, None).sum(axis=1)  # [z, x]
    proj = np.repeat(mu[::-1], 8, axis=0)  # superior at the top row
    proj = (proj / proj.max() * 4000).round()
    stored = (4095 - proj).astype("<u2")  # MONOCHROME1: more attenuation -> lower value
    ds = base("CR", CR_SERIES, 2, f"{CR_SERIES}.1")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = stored.shape
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelRepresentation = 0
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.ImagerPixelSpacing = [DZ / 8, PS]
    ds.PixelSpacing = [DZ / 8, PS]
    ds.ViewPosition = "AP"
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.PixelData = stored.tobytes()
    ds.save_as(os.path.join(OUT, "chest_cr.dcm"), enforce_file_format=True)


if __name__ == "__main__":
    main()
