#!/usr/bin/env bash
# gadget-suite.sh - pvusb with real USB devices: boots the gadget VM (gadget-vm.sh) with
# pvusbd, the pvusb CLI and gadget_check from a build directory, runs
# gadget-suite-guest.sh inside it (SourceSink, mass storage, HID and ACM gadgets through
# pvusbd's libusb back-end to a local controller, unplug/replug, driver re-bind, and
# isochronous OUT to QEMU's usb-audio device: gadget-vm.sh --usb-audio) and prints
# its result as the last line:
#   gadget: N passed, M failed
#
#   tests/vm/gadget-suite.sh [BUILD_DIR] [-- GUEST_ARGS...]   (default BUILD_DIR: build)
#
# Builds nothing: run `ninja -C BUILD_DIR` first. Needs root (gadget-vm.sh installs its
# host packages and caches the guest in /var/cache/pvusb-vm).
# Exit status: 0 when every check passed, 1 otherwise (also when the VM itself failed).
set -eu

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=build
if [[ $# -gt 0 && $1 != -- ]]; then build=$1; shift; fi
[[ ${1:-} == -- ]] && shift

summary_fail() { # reason
    echo "gadget-suite: $*" >&2
    echo "gadget: 0 passed, 1 failed"
    exit 1
}

bins=()
for b in src/daemon/pvusbd src/cli/pvusb src/usbip/pvusb-usbipd tests/vm/gadget_check tests/vm/usbfs_check; do
    [[ -x $build/$b ]] || summary_fail "$build/$b is missing: build first (ninja -C $build)"
    bins+=(--bin "$build/$b")
done

out=$(mktemp "${TMPDIR:-/tmp}/gadget-suite.XXXXXX")
trap 'rm -f "$out"' EXIT
# A full run takes ~1 min of guest time under TCG; the timeout leaves room for a slow CI.
# The guest's own summary line is held back: the last line printed is this script's.
set +e
"$HERE/gadget-vm.sh" --udcs 4 --usb-audio --timeout 420 "${bins[@]}" \
    --run "$HERE/gadget-suite-guest.sh" -- "$@" 2>&1 | tee "$out" | grep -v '^gadget: [0-9]* passed'
vm_rc=${PIPESTATUS[0]}
set -e

line=$(grep -E '^gadget: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
if [[ -z $line ]]; then
    summary_fail "the guest reported no result (gadget-vm.sh exit status $vm_rc)"
fi
passed=$(awk '{print $2}' <<<"$line")
failed=$(awk '{print $4}' <<<"$line")
# The VM failing after the summary (a kernel crash at shutdown, a timeout) is a failure too.
if [[ $vm_rc -ne 0 && $failed -eq 0 ]]; then
    echo "gadget-suite: gadget-vm.sh exit status $vm_rc" >&2
    failed=1
fi
echo "gadget: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
