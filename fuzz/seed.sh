#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds (the corpus folder is git-ignored):
#   dicom_decode  pydicom's small test files (< 40 KiB; real transfer syntaxes, broken files)
#                 + synthetic phantoms for pipeline branches (seed_synthetic.py)
#   nifti         synthetic NIfTI-1 / NIfTI-2 / gzip files (seed_synthetic.py)
#   jpeg_dct      our JPEG 8/12-bit test streams (crates/ingest/tests/fixtures/jpeg12)
# Usage: fuzz/seed.sh [FIXTURES_DIR]   (default ../shared/fixtures beside the checkout)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
fixtures="${1:-$root/../shared/fixtures}"
corpus="$here/corpus"
mkdir -p "$corpus/dicom_decode" "$corpus/nifti" "$corpus/jpeg_dct"

pydicom="$fixtures/dicom/pydicom_test_files/test_files"
if [ -d "$pydicom" ]; then
    # Small files only: libFuzzer's default -max_len follows the largest seed, and a mutation
    # of a 40 KiB file is as informative as one of a 4 MiB file, at a hundredth of the cost.
    find "$pydicom" -maxdepth 1 -name '*.dcm' -size -40k -exec cp -t "$corpus/dicom_decode" {} +
else
    echo "SKIP: $pydicom absent; only synthetic DICOM seeds" >&2
fi
python3 "$here/seed_synthetic.py" "$corpus/dicom_decode" "$corpus/nifti"
cp "$root"/crates/ingest/tests/fixtures/jpeg12/*.jpg "$corpus/jpeg_dct/"
for t in dicom_decode nifti jpeg_dct; do
    echo "$t: $(ls "$corpus/$t" | wc -l) seeds"
done
