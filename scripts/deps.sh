#!/usr/bin/env bash
# Install the Debian 12 packages logferry builds and tests with.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libprotobuf-c-dev protobuf-c-compiler libcurl4-openssl-dev libssl-dev
      libzstd-dev libconfig-dev check libsubunit-dev libpcre2-dev
      libjansson-dev libexpat1-dev
      python3 clang-format)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The AWS tests run moto (a third-party AWS emulator) from the default
# python3, with boto3 to check results. The machine image ships them;
# elsewhere, install them from PyPI.
if ! python3 -c "import moto.server, boto3" 2>/dev/null; then
  echo "deps: moto/boto3 missing; installing moto[server] and boto3 with pip"
  python3 -m pip install --quiet "moto[server]" boto3 || {
    echo "deps: cannot install moto; the AWS tests need it (python3 -m pip install 'moto[server]' boto3)" >&2
    exit 1
  }
fi
