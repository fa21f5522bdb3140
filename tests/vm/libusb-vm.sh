#!/usr/bin/env bash
# The libusb back-end against real (gadget) USB devices in the gadget VM.
#   tests/vm/libusb-vm.sh [BUILD_DIR] [-- PHASES...]     (default build-L; phases: see
#   tests/vm/libusb-guest.sh). Builds tests/vm/libusb-front.c against BUILD_DIR's library.
#   For a sanitizer build: LIBUSB_FRONT_CFLAGS=-fsanitize=address,undefined.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
build=${1:-$ROOT/build-L}
shift || true
[[ ${1:-} == -- ]] && shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pvusb-libusb-vm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046 # pkg-config output is meant to split
cc ${LIBUSB_FRONT_CFLAGS:-} -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
    -I"$ROOT/include" -I"$ROOT/src" -o "$tmp/libusb-front" "$HERE/libusb-front.c" \
    "$build/src/libpvusb.a" $(pkg-config --cflags --libs libusb-1.0 libudev json-c) -pthread
args=()
(($#)) && args=(-- "$*")
exec "$HERE/gadget-vm.sh" --timeout 300 --udcs 2 --bin "$build/src/daemon/pvusbd" \
    --bin "$build/src/cli/pvusb" --bin "$tmp/libusb-front" --run "$HERE/libusb-guest.sh" "${args[@]}"
