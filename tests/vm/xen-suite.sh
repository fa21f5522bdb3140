#!/bin/bash
# xen-suite.sh: pvusbd as the PVUSB backend of real Xen 4.17 (libxl, `xl`) serving the
# real Linux xen-hcd frontend in PV domUs, on the Xen test machine (tests/vm/xen-vm.sh).
#
#   tests/vm/xen-suite.sh [--build-dir DIR] [--keep-log FILE]
#
# Builds pvusbd and pvusb with the xen transport (own build dir, default build-xen-vm),
# a static usbfs checker for the domU, boots the machine, and runs xen-suite-dom0.sh in
# dom0 (which uses xen-suite-domu.sh in the domUs): xl usbctrl-attach and usbctrl= in a
# domain config against pvusbd, emulated devices enumerated by the domU's Linux, data
# checked both ways (storage image, sourcesink through usbfs), hot-detach/attach by pvusb
# and by xenstore port/N, xl usbctrl-detach and xl destroy leaving dom0 clean, and pvusbd
# restarted (kill -9 idle, SIGTERM, kill -9 with a URB in flight) under a running domU: its
# controller resumed from the ring journal, every request answered once, its devices
# enumerated again and moving data.
# The last line is "xen: N passed, M failed"; the exit status is non-zero on any failure.
# Needs root and libxen-dev (pkg-config xenstore xengnttab xenevtchn).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$ROOT/build-xen-vm
KEEP_LOG=""
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) BUILD=$2; shift 2 ;;
        --keep-log) KEEP_LOG=$2; shift 2 ;;
        -h|--help) sed -n '2,/^# Needs root/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "xen-suite: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

report() { echo "xen: $1 passed, $2 failed"; }
for m in xenstore xengnttab xenevtchn; do
    pkg-config --exists "$m" || { echo "xen-suite: pkg-config finds no $m (apt-get install libxen-dev)" >&2; report 0 1; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pvusb-xen-suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A plain optimised build: the sanitizers' run-time libraries are not in dom0.
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" -Dxen=enabled -Dbuildtype=debugoptimized >"$tmp/setup.log" 2>&1 ||
        { tail -n 20 "$tmp/setup.log" >&2; report 0 1; exit 1; }
fi
ninja -C "$BUILD" -j2 src/daemon/pvusbd src/cli/pvusb >"$tmp/build.log" 2>&1 ||
    { tail -n 30 "$tmp/build.log" >&2; report 0 1; exit 1; }
cc -static -O2 -Wall -Wextra -Werror -o "$tmp/xen-usbfs-check" "$HERE/xen-usbfs-check.c"

log=$tmp/console.log
set +e
"$HERE/xen-vm.sh" --timeout "${PVUSB_XEN_SUITE_TIMEOUT:-1500}" \
    --file "$BUILD/src/daemon/pvusbd:/usr/local/sbin/pvusbd" \
    --file "$BUILD/src/cli/pvusb:/usr/local/bin/pvusb" \
    --file "$HERE/xen-suite-hostile.sh:/root/xen-suite-hostile.sh" \
    --file "$HERE/xen-suite-domu.sh:/root/domu.sh" \
    --file "$HERE/gadget-initramfs/gadget.sh:/lib/gadget.sh" \
    --domu-file "$tmp/xen-usbfs-check:/usr/bin/xen-usbfs-check" \
    --run "$HERE/xen-suite-dom0.sh" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ -z "$KEEP_LOG" ] || cp "$log" "$KEEP_LOG"

# The dom0 script's own count; a machine that died early counts as one more failure.
line=$(grep -a '^XEN-SUITE: [0-9]* passed, [0-9]* failed' "$log" | tail -n 1 | tr -d '\r' || true)
if [ -n "$line" ]; then
    p=$(sed 's/^XEN-SUITE: \([0-9]*\) passed.*/\1/' <<<"$line")
    f=$(sed 's/.* \([0-9]*\) failed.*/\1/' <<<"$line")
else
    p=$(grep -ac '^XEN-SUITE: PASS ' "$log" || true)
    f=$(( $(grep -ac '^XEN-SUITE: FAIL ' "$log" || true) + 1 ))
    echo "xen-suite: the machine gave no result (xen-vm.sh rc=$rc)" >&2
fi
[ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
# This machine (Xen PV under QEMU TCG) crashed ordinary processes in dom0 and the domUs, also
# with no pvusb part running, until xen-vm.sh made Xen switch FPU state eagerly (see there).
# That guard stays: a failed run in which
# the kernel reports such a crash of a program that is not ours (bash, grep, busybox...)
# says nothing about pvusb: it is reported as a run without a result, so that test.sh runs
# the suite once more. Crashes of pvusbd or pvusb never count as the machine's.
others=$(grep -aoE '(traps: )?[A-Za-z0-9_.-]+\[[0-9]+\]:? (segfault at|general protection fault)' "$log" |
    sed -E 's/^traps: //; s/\[.*//' | grep -vxE 'pvusbd|pvusb' | sort | uniq -c | tr -s ' \n' ' ' || true)
if [ "$f" != 0 ] && [ -n "$others" ]; then
    echo "xen-suite: the machine crashed programs that are not pvusb's ($others): the machine gave no result" >&2
fi
if grep -aq '^XEN-SUITE: FAIL ' "$log"; then
    echo "xen-suite: failed checks:" >&2
    grep -a '^XEN-SUITE: FAIL ' "$log" | tr -d '\r' | sed 's/^/  /' >&2
fi
report "$p" "$f"
[ "$f" = 0 ]
