"""Writes small synthetic seeds for the fuzz targets (Python standard library only).

Each DICOM seed exercises one branch of the pixel pipeline that the pydicom test files cover
thinly or not at all (PS3.3 C.7.6.3 Image Pixel Module, C.11 LUTs, C.7.6.16 functional
groups). Values are tiny on purpose: the fuzzer mutates headers, not megabytes of pixels.

Usage: python3 seed_synthetic.py OUT_DICOM_DIR OUT_NIFTI_DIR
"""
import gzip
import math
import os
import struct
import sys

# Explicit VR with a 4-byte length after two reserved bytes (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"SQ", b"UN", b"UT", b"UC", b"UR"}


def pad(vr, v):
    if len(v) % 2:
        v += b"\0" if vr in (b"UI", b"OB") else b" "
    return v


def el(group, elem, vr, value, explicit=True):
    """One data element, little endian; `value` bytes (or str, encoded ASCII)."""
    v = pad(vr, value.encode() if isinstance(value, str) else value)
    head = struct.pack("<HH", group, elem)
    if not explicit:
        return head + struct.pack("<I", len(v)) + v
    if vr in LONG_VRS:
        return head + vr + b"\0\0" + struct.pack("<I", len(v)) + v
    return head + vr + struct.pack("<H", len(v)) + v


def seq(group, elem, items, explicit=True):
    """A sequence of defined-length items (each a bytes data set)."""
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(i)) + i for i in items)
    return el(group, elem, b"SQ", body, explicit)


def us(*v):
    return struct.pack("<%dH" % len(v), *v)


def part10(ds, ts="1.2.840.10008.1.2.1"):
    meta = el(2, 1, b"OB", b"\0\1") + el(2, 2, b"UI", "1.2.840.10008.5.1.4.1.1.7") + \
        el(2, 3, b"UI", "1.2.3.4.5.6") + el(2, 0x10, b"UI", ts) + el(2, 0x12, b"UI", "1.2.3.4")
    return b"\0" * 128 + b"DICM" + el(2, 0, b"UL", struct.pack("<I", len(meta))) + meta + ds


def image(rows, cols, bits, photometric, pixels, spp=1, signed=0, frames=None, extra=b"",
          explicit=True, pixel_tag=(0x7FE0, 0x10), pixel_vr=b"OW"):
    """An image data set; `extra` holds (0028,xxxx)-group-or-earlier elements in tag order."""
    e = lambda g, n, vr, v: el(g, n, vr, v, explicit)
    ds = e(0x0008, 0x0016, b"UI", "1.2.840.10008.5.1.4.1.1.7")
    ds += e(0x0008, 0x0018, b"UI", "1.2.3.4.5.6")
    ds += e(0x0008, 0x0060, b"CS", "CT")
    ds += e(0x0020, 0x000E, b"UI", "1.2.3.4.5")
    ds += e(0x0020, 0x0032, b"DS", "-10\\-10\\5")
    ds += e(0x0020, 0x0037, b"DS", "1\\0\\0\\0\\1\\0")
    ds += e(0x0028, 0x0002, b"US", us(spp))
    ds += e(0x0028, 0x0004, b"CS", photometric)
    if spp > 1:
        ds += e(0x0028, 0x0006, b"US", us(0))
    if frames is not None:
        ds += e(0x0028, 0x0008, b"IS", str(frames))
    ds += e(0x0028, 0x0010, b"US", us(rows))
    ds += e(0x0028, 0x0011, b"US", us(cols))
    ds += e(0x0028, 0x0030, b"DS", "0.5\\0.5")
    ds += e(0x0028, 0x0100, b"US", us(bits))
    ds += e(0x0028, 0x0101, b"US", us(min(bits, 12) if bits == 16 else bits))
    ds += e(0x0028, 0x0102, b"US", us((min(bits, 12) if bits == 16 else bits) - 1))
    ds += e(0x0028, 0x0103, b"US", us(signed))
    ds += extra
    ds += e(pixel_tag[0], pixel_tag[1], pixel_vr, pixels)
    return ds


def voi(center, width, function):
    return el(0x0028, 0x1050, b"DS", center) + el(0x0028, 0x1051, b"DS", width) + \
        el(0x0028, 0x1056, b"CS", function)


def rescale(slope, intercept):
    return el(0x0028, 0x1052, b"DS", intercept) + el(0x0028, 0x1053, b"DS", slope)


def dicom_seeds():
    px16 = struct.pack("<16h", *[(i * 97) % 2048 - 1024 for i in range(16)])
    yield "ct_signed_rescale_sigmoid.dcm", part10(image(4, 4, 16, "MONOCHROME2", px16, signed=1,
                                                       extra=voi("40", "400", "SIGMOID") + rescale("1", "-1024")))
    yield "ct_linear_exact.dcm", part10(image(4, 4, 16, "MONOCHROME2", px16, signed=1,
                                              extra=voi("40\\300", "400\\1500", "LINEAR_EXACT")))
    yield "raw_implicit_mono1_2frames.dcm", image(3, 3, 8, "MONOCHROME1", bytes(range(0, 180, 10)),
                                                  frames=2, explicit=False)
    yield "rgb_planar.dcm", part10(image(2, 2, 8, "RGB", bytes(range(12)), spp=3,
                                         extra=b"", pixel_vr=b"OB").replace(
        el(0x0028, 0x0006, b"US", us(0)), el(0x0028, 0x0006, b"US", us(1))))
    yield "ybr_full_422.dcm", part10(image(2, 4, 8, "YBR_FULL_422", bytes([16, 20, 128, 130] * 4), spp=3,
                                           pixel_vr=b"OB"))
    # PALETTE COLOR with 16-bit tables of 4 entries starting at 0 (PS3.3 C.7.6.3.1.5).
    lut = lambda c: el(0x0028, 0x1101 + c, b"US", us(4, 0, 16))
    data = lambda c: el(0x0028, 0x1201 + c, b"OW", us(*[(c + 1) * 1000 * k for k in range(4)]))
    yield "palette16.dcm", part10(image(2, 2, 8, "PALETTE COLOR", bytes([0, 1, 2, 3]),
                                        extra=lut(0) + lut(1) + lut(2) + data(0) + data(1) + data(2),
                                        pixel_vr=b"OB"))
    # Modality LUT Sequence and VOI LUT Sequence (PS3.3 C.11.1, C.11.2).
    mlut = seq(0x0028, 0x3000, [el(0x0028, 0x3002, b"US", us(4, 0, 16)) + el(0x0028, 0x3004, b"LO", "M")
                                + el(0x0028, 0x3006, b"OW", us(0, 100, 200, 4000))])
    vlut = seq(0x0028, 0x3010, [el(0x0028, 0x3002, b"US", us(3, 100, 8)) + el(0x0028, 0x3006, b"OW", us(0, 128, 255))])
    yield "lut_sequences.dcm", part10(image(2, 2, 8, "MONOCHROME2", bytes([0, 1, 2, 3]),
                                            extra=mlut + vlut, pixel_vr=b"OB"))
    yield "float32.dcm", part10(image(2, 2, 32, "MONOCHROME2",
                                      struct.pack("<4f", -1.5, 0.0, math.pi, 1e6),
                                      pixel_tag=(0x7FE0, 0x0008), pixel_vr=b"OF"))
    yield "bits1.dcm", part10(image(2, 8, 1, "MONOCHROME2", bytes([0b10110001, 0b01001110]),
                                    pixel_vr=b"OB"))
    # Enhanced multi-frame: shared orientation and spacing, per-frame position and rescale
    # (PS3.3 C.7.6.16.2.3, C.7.6.16.2.1, C.7.6.16.2.9).
    shared = seq(0x5200, 0x9229, [
        seq(0x0020, 0x9116, [el(0x0020, 0x0037, b"DS", "1\\0\\0\\0\\1\\0")])
        + seq(0x0028, 0x9110, [el(0x0018, 0x0050, b"DS", "2") + el(0x0028, 0x0030, b"DS", "0.5\\0.5")])])
    per_frame = seq(0x5200, 0x9230, [
        seq(0x0020, 0x9113, [el(0x0020, 0x0032, b"DS", "0\\0\\%d" % (4 - 2 * f))])
        + seq(0x0028, 0x9145, [el(0x0028, 0x1052, b"DS", str(-1000 * f)) + el(0x0028, 0x1053, b"DS", "2")])
        for f in range(3)])
    yield "enhanced_3frames.dcm", part10(image(2, 2, 16, "MONOCHROME2", us(*range(12)), frames=3)
                                         .replace(el(0x7FE0, 0x10, b"OW", us(*range(12))),
                                                  shared + per_frame + el(0x7FE0, 0x10, b"OW", us(*range(12)))))
    # Deflated explicit VR little endian (PS3.5 A.5).
    ds = image(2, 2, 8, "MONOCHROME2", bytes([9, 8, 7, 6]), pixel_vr=b"OB")
    comp = __import__("zlib").compressobj(9, 8, -15)
    yield "deflated.dcm", part10(comp.compress(ds) + comp.flush(), ts="1.2.840.10008.1.2.1.99")


def nifti1(dims, datatype, bitpix, data, gz=False):
    """NIfTI-1 single file: 348-byte header, 4 bytes extension flag, data at 352."""
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, 0.8, 0.8, 2.0, 1.0, 0, 0, 0)  # qfac, spacing
    struct.pack_into("<f", h, 108, 352.0)  # vox_offset
    struct.pack_into("<ff", h, 112, 2.0, -100.0)  # scl_slope, scl_inter
    struct.pack_into("<hh", h, 252, 1, 1)  # qform_code, sform_code
    struct.pack_into("<6f", h, 256, 0, 0, 0, -10, 20, -30)  # quatern b, c, d, offsets
    for row, off in enumerate((280, 296, 312)):
        v = [0.0] * 4
        v[row] = (0.8, 0.8, 2.0)[row]
        v[3] = -5.0 * row
        struct.pack_into("<4f", h, off, *v)
    h[344:348] = b"n+1\0"
    out = bytes(h) + b"\0\0\0\0" + data
    return gzip.compress(out, mtime=0) if gz else out


def nifti2(dims, datatype, bitpix, data):
    """NIfTI-2 single file: 540-byte header, data at 544."""
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    struct.pack_into("<8q", h, 16, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into("<8d", h, 104, 1.0, 1.0, 1.0, 1.0, 1, 0, 0, 0)
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<dd", h, 176, 1.0, 0.0)
    struct.pack_into("<ii", h, 344, 0, 2)  # qform_code, sform_code
    for row, off in enumerate((400, 432, 464)):
        v = [0.0] * 4
        v[row] = 1.0
        struct.pack_into("<4d", h, off, *v)
    return bytes(h) + b"\0\0\0\0" + data


def nifti_seeds():
    yield "int16_3d.nii", nifti1([4, 3, 2], 4, 16, struct.pack("<24h", *range(-12, 12)))
    yield "float_4d.nii.gz", nifti1([2, 2, 2, 2], 16, 32, struct.pack("<16f", *[i / 3 for i in range(16)]), gz=True)
    yield "rgb24_2d.nii", nifti1([2, 2], 128, 24, bytes(range(12)))
    yield "uint8_v2.nii", nifti2([2, 2, 2], 2, 8, bytes(range(8)))


def main():
    dicom_dir, nifti_dir = sys.argv[1], sys.argv[2]
    for folder, seeds in ((dicom_dir, dicom_seeds()), (nifti_dir, nifti_seeds())):
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(folder, "synthetic_" + name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
