#!/usr/bin/env bash
# Self-test of the gadget VM harness: builds tools/usbprobe.c (a small libusb program) on
# the host, then boots the VM twice: guest/smoke.sh (one SourceSink gadget, unplug/replug,
# libusb transfers and hot-plug) and guest/gadgets.sh (storage, HID, ACM, composite, four
# UDCs at once, USB/IP loopback). Each prints an "N passed, N failed" line.
# Needs libusb-1.0-0-dev and pkg-config on the host (the project's own build needs them).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pvusb-vm-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

flags=$(pkg-config --cflags --libs libusb-1.0) ||
    { echo "selftest: pkg-config finds no libusb-1.0 (apt-get install libusb-1.0-0-dev)" >&2; exit 1; }
# shellcheck disable=SC2086 # flags are meant to split
cc -O2 -Wall -Wextra -Werror -o "$tmp/usbprobe" "$HERE/tools/usbprobe.c" $flags

rc=0
"$HERE/gadget-vm.sh" --timeout 300 --bin "$tmp/usbprobe" --run "$HERE/guest/smoke.sh" || rc=1
"$HERE/gadget-vm.sh" --timeout 300 --udcs 4 --bin "$tmp/usbprobe" --run "$HERE/guest/gadgets.sh" || rc=1
exit "$rc"
