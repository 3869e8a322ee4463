#!/usr/bin/env bash
# Install headless Chromium for the explorer's browser test and print its path.
# Needs root (it installs Debian's chromium package when missing); Playwright's Python package (in the dev
# extra) drives it through executable_path, since Playwright's own browser download needs its CDN.
# Used by `make test-browser-deps` and CI:
#   export LEGO_VAE_TEST_CHROMIUM=$(make -s test-browser-deps) && make test
set -euo pipefail
{
  if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
  chromium --headless --no-sandbox --disable-gpu --version 2>/dev/null
} >&2
command -v chromium
