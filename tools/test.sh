#!/usr/bin/env bash
# The project's test command (README): installs what the build and tests need, then runs every
# test of the workspace. Safe to run repeatedly; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages:
#   cmake     - builds CharLS (JPEG-LS decoder) bundled by the charls crate
#   chromium  - renders the HTML eval report in a real browser in a test
#   mesa-vulkan-drivers, libvulkan1 - Mesa's software Vulkan adapter (lavapipe): a real WGPU
#               adapter on a machine without a GPU, so the WGPU path is tested, not skipped
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
# A Vulkan loader and at least one driver manifest (lavapipe's, or a real GPU's).
have_vulkan() {
  # Not `grep -q`: under pipefail, ldconfig killed by SIGPIPE would read as "missing".
  ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null || return 1
  local icd
  for icd in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do
    [ -e "$icd" ] && return 0
  done
  return 1
}
have_vulkan || need+=(mesa-vulkan-drivers libvulkan1)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools/test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "tools/test.sh: please install: ${need[*]} (cmake is required; without chromium the report-rendering test is skipped, without a Vulkan driver the WGPU tests are)" >&2
    command -v cmake >/dev/null 2>&1 || exit 1
  fi
fi

# With a Vulkan driver present (installed above in CI), tests that need a WGPU adapter fail
# instead of skipping when none can be started (crates/model/src/device.rs, `wgpu_for_tests`).
if have_vulkan; then
  export MEDVQA_REQUIRE_WGPU=1
else
  echo "tools/test.sh: no Vulkan driver: WGPU tests will print SKIP" >&2
fi
# Mesa's EGL warns on stderr when wgpu probes OpenGL without a runtime dir; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/medvqa-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

# The Python readers users open encode-archive outputs with (pyarrow, pandas, polars, DuckDB,
# numpy; pinned in tools/archive/requirements.txt): tests/encode_archive.rs reads our Parquet and
# safetensors files with each. Installed once into target/py-readers; without them (no network)
# those checks print SKIP.
readers="target/py-readers"
if [ ! -x "$readers/bin/python" ] || ! cmp -s tools/archive/requirements.txt "$readers/requirements.txt"; then
  rm -rf "$readers"
  if python3 -m venv "$readers" >/dev/null 2>&1 \
    && "$readers/bin/pip" install -q --disable-pip-version-check -r tools/archive/requirements.txt >/dev/null 2>&1; then
    cp tools/archive/requirements.txt "$readers/requirements.txt"
  else
    echo "tools/test.sh: could not install tools/archive/requirements.txt: Parquet reader checks will SKIP" >&2
    rm -rf "$readers"
  fi
fi
if [ -x "$readers/bin/python" ]; then
  export MEDVQA_PYTHON="$PWD/$readers/bin/python"
fi

# Lean CI builds: no incremental artefacts, one target dir for tests and the CLI.
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
cargo test --workspace --locked "$@"
