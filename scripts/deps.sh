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
