#!/usr/bin/env bash
# gadget-bench.sh - pvusb against a real USB device, in one boot of the gadget VM
# (tests/vm/gadget-vm.sh: QEMU TCG, 1 vCPU, oops=panic). The same workload
# (bench/bench_usb.c: bulk IN/OUT at 16 and 64 KiB with 1, 4 and 16 in flight, and
# GET_DESCRIPTOR round trips) runs against a SourceSink gadget
#   direct  with libusb on the device itself,
#   pvusb   through pvusbd's libusb back-end and the frontend library on a local controller,
#   usbip   with libusb on the copy Linux's USB/IP (usbipd + vhci-hcd, loopback) makes,
# and a table prints each figure with the same-boot ratios pvusb/direct and pvusb/usbip.
# Absolute figures under TCG mean little; the ratios are the result (testbeds.md §1).
#
#   bench/gadget-bench.sh [BUILD_DIR] [--quick]        (default BUILD_DIR: build)
#
# Builds nothing: run `ninja -C BUILD_DIR` first (pvusb-bench-usb needs libusb-1.0-dev).
# Not a test: exit status 1 only when a run failed, never because a target was missed.
set -eu

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=build
quick=""
for a in "$@"; do
    case $a in
    --quick) quick=--quick ;;
    -*) echo "usage: $0 [BUILD_DIR] [--quick]" >&2; exit 2 ;;
    *) build=$a ;;
    esac
done
bins=()
for b in src/daemon/pvusbd src/cli/pvusb bench/pvusb-bench-usb bench/pvusb-bench; do
    [[ -x $build/$b ]] || { echo "gadget-bench: $build/$b missing: build first (ninja -C $build)" >&2; exit 1; }
    bins+=(--bin "$build/$b")
done

work=$(mktemp -d "${TMPDIR:-/tmp}/gadget-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The guest side (busybox ash). Modes run direct, pvusb, usbip: usbip last, because
# usbip-host has crashed the kernel when URBs were cancelled (the VM then ends at once).
cat >"$work/bench-guest.sh" <<'GUEST'
#!/bin/sh
set -u
. /lib/gadget.sh
Q=${1:-}
# CPU use of the whole guest over a mode: where the one vCPU went.
cpu_snap() { head -n 1 /proc/stat; }
cpu_report() { # LABEL BEFORE-LINE
    echo "$2" "$(cpu_snap)" | awk -v l="$1" '{
        for (i = 2; i <= 9; i++) d[i] = $(i + 11) - $i
        t = 0; for (i = 2; i <= 9; i++) t += d[i]
        if (t > 0) printf "CPU %s user %.0f%% system %.0f%% softirq %.0f%% idle %.0f%%\n", l,
            100 * (d[2] + d[3]) / t, 100 * d[4] / t, 100 * (d[7] + d[8]) / t, 100 * (d[5] + d[6]) / t }'
}
proc_cpu() { # PID -> "utime+stime" in ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

gadget_new ss 0x1d6b 0x0104 && gadget_add_sourcesink ss bulk_buflen=65536 && gadget_bind ss ||
    { echo "gadget-bench: no SourceSink gadget"; exit 1; }
P=$(gadget_port ss)
rc=0

s=$(cpu_snap)
pvusb-bench-usb $Q --label direct libusb "$P" || rc=1
cpu_report direct "$s"
# The same with ordinary buffers, as most libusb programs use them: usbfs then allocates a
# kernel buffer per transfer and copies (the path pvusbd's back-end takes with guest pages).
pvusb-bench-usb $Q --label malloc --malloc libusb "$P" || rc=1

mkdir -p /run/pvusb /var/lib/pvusb
export PVUSB_SOCKET=/run/pvusb/pvusbd.sock
pvusbd -q -s "$PVUSB_SOCKET" >/tmp/pvusbd.log 2>&1 &
pvusbd_pid=$!
gadget_wait_for 10 test -S "$PVUSB_SOCKET"
if pvusb usbctrl-attach bench version=2 ports=8 >/dev/null && pvusb usbdev-attach bench "$P" controller=0 port=1; then
    s=$(cpu_snap)
    d0=$(proc_cpu "$pvusbd_pid")
    pvusb-bench-usb $Q --label pvusb --peer "$pvusbd_pid" pvusb 1 || rc=1
    cpu_report pvusb "$s"
    echo "CPU pvusb pvusbd $(($(proc_cpu "$pvusbd_pid") - d0)) ticks"
    pvusb usbdev-detach bench 0 1 >/dev/null || rc=1
else
    echo "gadget-bench: pvusb could not take $P"; rc=1
fi
kill "$pvusbd_pid"; wait "$pvusbd_pid" || true
[ "$rc" = 0 ] || tail -n 20 /tmp/pvusbd.log

# USB/IP over loopback: the device reappears on a vhci-hcd bus.
vhci_copy() {
    local d
    for d in /sys/bus/usb/devices/*-*; do
        case ${d##*/} in *:*|"$P") continue ;; esac
        [ "$(cat "$d/idProduct" 2>/dev/null)" = 0104 ] && { echo "${d##*/}"; return 0; }
    done
    return 1
}
exported() { usbip list -r 127.0.0.1 2>/dev/null | grep -q " $P:"; }
if modprobe usbip-host && modprobe vhci-hcd && usbipd -D >/dev/null 2>&1 &&
    usbip bind -b "$P" >/dev/null 2>&1 && gadget_wait_for 5 exported &&
    usbip attach -r 127.0.0.1 -b "$P" >/dev/null 2>&1 &&
    gadget_wait_for 10 vhci_copy >/dev/null; then
    V=$(vhci_copy)
    s=$(cpu_snap)
    pvusb-bench-usb $Q --label usbip libusb "$V" || rc=1
    cpu_report usbip "$s"
else
    echo "gadget-bench: USB/IP setup failed"; rc=1
fi
# Reference: what one wake-up costs here (two processes waking each other through an
# eventfd), from pvusb-bench's baselines. The pvusb path has two more of them per URB
# than a direct libusb program (frontend -> pvusbd, pvusbd's libusb thread -> frontend).
if command -v pvusb-bench >/dev/null; then
    PVUSBD=$(command -v pvusbd) pvusb-bench --quick 2>/dev/null |
        sed -n 's/.*eventfd ping-pong \([0-9.]*\) us.*/REF eventfd-round-trip \1 us/p' | head -n 1
fi
exit $rc
GUEST
chmod +x "$work/bench-guest.sh"

set +e
"$HERE/../tests/vm/gadget-vm.sh" --timeout 600 "${bins[@]}" --run "$work/bench-guest.sh" -- $quick |
    tee "$work/out" | grep -v '^BENCH '
vm_rc=${PIPESTATUS[0]}
set -e

# ---- the table ----
awk '
$1 == "REF" { ref = $3 }
$1 == "BENCH" { v[$2, $3] = $4; unit[$3] = $5; if (!($3 in seen)) { seen[$3] = 1; order[n++] = $3 } }
# COST label case xfers N app-cpu-us X app-csw Y peer-cpu-us Z peer-csw W
$1 == "COST" { cpu[$2, $3] = sprintf("%.0f", $7 + $11); csw[$2, $3] = sprintf("%.1f", $9 + $13);
    if ($2 == "pvusb") pcpu[$3] = sprintf("%.0f/%.0f", $7, $11) }
function f(x) { return x == "" ? "-" : x }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function target(c, rd, ru,    t) {
    t = ""
    if (c ~ /^bulk-.*-x16$/) t = (rd == "-" ? "" : (rd >= 0.95 ? "ok" : "MISS")) " >=0.95 direct"
    if (c ~ /^bulk-.*-x(1|4)$/) t = (ru == "-" ? "" : (ru >= 2 ? "ok" : "MISS")) " >=2 usbip"
    if (c == "control-median") t = (rd == "-" ? "" : (rd <= 1.2 ? "ok" : "MISS")) " <=1.2x direct"
    return t
}
END {
    if (!n) exit
    printf "\n%-18s %-5s %9s %9s %9s %9s %13s %12s %13s  %s\n", "case", "unit", "direct", "malloc",
        "pvusb", "usbip", "pvusb/direct", "pvusb/usbip", "pvusb/malloc", "target"
    for (i = 0; i < n; i++) {
        c = order[i]; rd = ratio(v["pvusb", c], v["direct", c]); ru = ratio(v["pvusb", c], v["usbip", c])
        printf "%-18s %-5s %9s %9s %9s %9s %13s %12s %13s  %s\n", c, unit[c], f(v["direct", c]),
            f(v["malloc", c]), f(v["pvusb", c]), f(v["usbip", c]), rd, ru,
            ratio(v["pvusb", c], v["malloc", c]), target(c, rd, ru)
    }
    print "(direct: libusb with usbfs zero-copy buffers; malloc: libusb with ordinary buffers)"
    if (ref != "") printf "one eventfd round trip between two processes in this guest: %s us\n", ref
    # Guest CPU per transfer (user+system, the benchmark process plus pvusbd for pvusb)
    # and context switches per transfer: on one vCPU, this is where the time goes.
    printf "\n%-18s %14s %14s %14s %16s   %s\n", "per transfer", "direct us/csw", "pvusb us/csw",
        "usbip us/csw", "pvusb app/pvusbd", "(CPU us; context switches)"
    for (i = 0; i < n; i++) {
        c = order[i]
        if (c == "control-p99") continue
        k = c == "control-median" ? "control" : c
        printf "%-18s %14s %14s %14s %16s\n", k, f(cpu["direct", k]) "/" f(csw["direct", k]),
            f(cpu["pvusb", k]) "/" f(csw["pvusb", k]), f(cpu["usbip", k]) "/" f(csw["usbip", k]), f(pcpu[k])
    }
}' "$work/out"
exit $((vm_rc != 0))
