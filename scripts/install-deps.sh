#!/bin/bash
# Installs what pvusb needs on Debian 12, only what is missing.
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc clang libjson-c-dev libusb-1.0-0-dev libudev-dev
      libclang-rt-14-dev usb.ids jq groff-base libxen-dev tshark)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
