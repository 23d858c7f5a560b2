#!/usr/bin/env bash
# The project's test command (README): installs what the build and tests need, then runs every
# test of the workspace. Safe to run repeatedly; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages:
#   cmake     - builds CharLS (JPEG-LS decoder) bundled by the charls crate
#   chromium  - renders the HTML eval report in a real browser in a test
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools/test.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "tools/test.sh: please install: ${need[*]} (cmake is required; without chromium the report-rendering test is skipped)" >&2
    command -v cmake >/dev/null 2>&1 || exit 1
  fi
fi

# Lean CI builds: no incremental artefacts, one target dir for tests and the CLI.
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
cargo test --workspace --locked "$@"
