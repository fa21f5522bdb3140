#!/usr/bin/env bash
# gadget-bench.sh - pvusb against a real USB device, in one boot of the gadget VM
# (tests/vm/gadget-vm.sh: QEMU TCG, 1 vCPU, oops=panic). The same workload
# (bench/bench_usb.c: bulk IN/OUT at 16 and 64 KiB with 1, 4 and 16 in flight, and
# GET_DESCRIPTOR round trips) runs against a SourceSink gadget
#   direct  with libusb on the device itself,
#   pvusb   through pvusbd's libusb back-end and the frontend library on a local controller,
#   pvusbip with libusb on the copy vhci-hcd makes of pvusb-usbipd's export (loopback),
#   usbip   with libusb on the copy Linux's USB/IP (usbipd + vhci-hcd, loopback) makes,
# and a table prints each figure with the same-boot ratios pvusb/direct, pvusb/usbip and
# pvusbip/usbip (our USB/IP server against Linux's, same client, same device).
# Absolute figures under TCG mean little; the ratios are the result (testbeds.md §1).
#
#   bench/gadget-bench.sh [BUILD_DIR] [--quick] [--rounds N] [--base BUILD_DIR2]
#                                                        (default BUILD_DIR: build)
#
# One boot runs N rounds (default 3), each "direct, pvusb" (with --base: "direct, base,
# pvusb", base being pvusbd, pvusb and pvusb-bench-usb of BUILD_DIR2: a before/after in
# one boot), then libusb with ordinary buffers once, then USB/IP twice, last (usbip-host
# has oopsed when URBs were cancelled). Each figure is the median over the rounds; each
# ratio the median of the per-round ratios (direct and pvusb of the same round), which a
# slow spell of the host (2 cores shared with other VMs) moves much less than single runs.
# --quick: shorter cases (0.3 s per bulk case, 300 control round trips), same rounds.
# Full: about 4-5 min; --quick: about 1.5 min.
#
# Builds nothing: run `ninja -C BUILD_DIR` first (pvusb-bench-usb needs libusb-1.0-dev).
# Not a test: exit status 1 only when a run failed, never because a target was missed.
set -eu

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=build
base=""
quick=""
rounds=3
usage() { echo "usage: $0 [BUILD_DIR] [--quick] [--rounds N] [--base BUILD_DIR2]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) quick=--quick ;;
    --rounds) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; rounds=$2; shift ;;
    --base) [[ -n ${2:-} ]] || usage; base=$2; shift ;;
    -*) usage ;;
    *) build=$1 ;;
    esac
    shift
done
bins=()
for b in src/daemon/pvusbd src/cli/pvusb src/usbip/pvusb-usbipd bench/pvusb-bench-usb bench/pvusb-bench; do
    [[ -x $build/$b ]] || { echo "gadget-bench: $build/$b missing: build first (ninja -C $build)" >&2; exit 1; }
    bins+=(--bin "$build/$b")
done

work=$(mktemp -d "${TMPDIR:-/tmp}/gadget-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
files=()
if [[ -n $base ]]; then
    mkdir "$work/base"
    for b in src/daemon/pvusbd src/cli/pvusb bench/pvusb-bench-usb; do
        [[ -x $base/$b ]] || { echo "gadget-bench: $base/$b missing: build it first" >&2; exit 1; }
        cp "$base/$b" "$work/base/"
    done
    files=(--file "$work/base:/opt/base")
fi

# The guest side (busybox ash): rounds of direct[, base], pvusb; malloc once; usbip last.
cat >"$work/bench-guest.sh" <<'GUEST'
#!/bin/sh
set -u
. /lib/gadget.sh
Q=""; ROUNDS=3; UROUNDS=2
for a in "$@"; do
    case $a in
    --quick) Q=--quick ;;
    rounds=*) ROUNDS=${a#rounds=} ;;
    usbip-rounds=*) UROUNDS=${a#usbip-rounds=} ;;
    esac
done
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

mkdir -p /run/pvusb /var/lib/pvusb
export PVUSB_SOCKET=/run/pvusb/pvusbd.sock

# One round of a pvusb path, with the programs in DIR: a fresh pvusbd takes the device,
# the frontend runs, pvusbd gives it back (so that the next direct round can open it).
pvusb_round() { # LABEL DIR
    local s d0 pid ok=1
    rm -f "$PVUSB_SOCKET"
    "$2/pvusbd" -q -s "$PVUSB_SOCKET" >"/tmp/pvusbd-$1.log" 2>&1 &
    pid=$!
    gadget_wait_for 10 test -S "$PVUSB_SOCKET" &&
        "$2/pvusb" usbctrl-attach bench version=2 ports=8 >/dev/null &&
        "$2/pvusb" usbdev-attach bench "$P" controller=0 port=1 >/dev/null || ok=0
    if [ "$ok" = 1 ]; then
        s=$(cpu_snap)
        d0=$(proc_cpu "$pid")
        "$2/pvusb-bench-usb" $Q --label "$1" --peer "$pid" pvusb 1 || rc=1
        cpu_report "$1" "$s"
        echo "CPU $1 pvusbd $(($(proc_cpu "$pid") - d0)) ticks"
        "$2/pvusb" usbdev-detach bench 0 1 >/dev/null || rc=1
    else
        echo "gadget-bench: $1: pvusbd could not take $P"; rc=1
    fi
    kill "$pid"; wait "$pid" || true
    [ "$rc" = 0 ] || tail -n 20 "/tmp/pvusbd-$1.log"
}

# Interleaved rounds, so that a slow spell of the host hits every path alike.
r=0
while [ $((r += 1)) -le "$ROUNDS" ] && [ "$rc" = 0 ]; do
    s=$(cpu_snap)
    pvusb-bench-usb $Q --label "direct$r" libusb "$P" || rc=1
    cpu_report "direct$r" "$s"
    [ -x /opt/base/pvusbd ] && pvusb_round "base$r" /opt/base
    pvusb_round "pvusb$r" /usr/local/bin
done
# The same with ordinary buffers, as most libusb programs use them: usbfs then allocates a
# kernel buffer per transfer and copies (the path pvusbd's back-end takes with guest pages).
# Informative only: once.
pvusb-bench-usb $Q --label malloc1 --malloc libusb "$P" || rc=1

# pvusb-usbipd over loopback: pvusbd takes the gadget through libusb, pvusb-usbipd
# exports it, the kernel's vhci-hcd imports it; the workload runs on that copy.
pvusbip_rounds() {
    local pid upid ok=1
    rm -f "$PVUSB_SOCKET"
    pvusbd -q -s "$PVUSB_SOCKET" >/tmp/pvusbd-pvusbip.log 2>&1 &
    pid=$!
    gadget_wait_for 10 test -S "$PVUSB_SOCKET" &&
        pvusb usbctrl-attach usbip version=2 ports=8 >/dev/null &&
        pvusb usbdev-attach usbip "$P" controller=0 port=1 >/dev/null || ok=0
    pvusb-usbipd -q -n usbip -l 127.0.0.1 >/tmp/pvusb-usbipd.log 2>&1 &
    upid=$!
    pvusb_exported() { usbip list -r 127.0.0.1 2>/dev/null | grep -q " pvusb-1:"; }
    if [ "$ok" = 1 ] && modprobe vhci-hcd && gadget_wait_for 10 pvusb_exported &&
        usbip attach -r 127.0.0.1 -b pvusb-1 >/dev/null 2>&1 && gadget_wait_for 10 vhci_copy >/dev/null; then
        V=$(vhci_copy)
        r=0
        while [ $((r += 1)) -le "$UROUNDS" ]; do
            s=$(cpu_snap)
            d0=$(( $(proc_cpu "$pid") + $(proc_cpu "$upid") ))
            pvusb-bench-usb $Q --label "pvusbip$r" libusb "$V" || rc=1
            cpu_report "pvusbip$r" "$s"
            echo "CPU pvusbip$r pvusbd+pvusb-usbipd $(( $(proc_cpu "$pid") + $(proc_cpu "$upid") - d0 )) ticks"
        done
        usbip detach -p "$(usbip port 2>/dev/null | sed -n 's/^Port \([0-9]*\):.*/\1/p' | head -n 1)" >/dev/null 2>&1
    else
        echo "gadget-bench: pvusb-usbipd setup failed"; rc=1
        tail -n 20 /tmp/pvusb-usbipd.log /tmp/pvusbd-pvusbip.log
    fi
    kill "$upid" 2>/dev/null; wait "$upid" || true
    pvusb usbdev-detach usbip 0 1 >/dev/null 2>&1 || true
    kill "$pid"; wait "$pid" || true
    gadget_wait_for 10 no_vhci_copy || true
}
no_vhci_copy() { ! vhci_copy >/dev/null; }

# USB/IP over loopback, last: usbip-host has crashed the kernel when URBs were
# cancelled (the VM then ends at once). The device reappears on a vhci-hcd bus.
vhci_copy() {
    local d
    for d in /sys/bus/usb/devices/*-*; do
        case ${d##*/} in *:*|"$P") continue ;; esac
        [ "$(cat "$d/idProduct" 2>/dev/null)" = 0104 ] && { echo "${d##*/}"; return 0; }
    done
    return 1
}
command -v pvusb-usbipd >/dev/null && pvusbip_rounds
exported() { usbip list -r 127.0.0.1 2>/dev/null | grep -q " $P:"; }
if modprobe usbip-host && modprobe vhci-hcd && usbipd -D >/dev/null 2>&1 &&
    usbip bind -b "$P" >/dev/null 2>&1 && gadget_wait_for 5 exported &&
    usbip attach -r 127.0.0.1 -b "$P" >/dev/null 2>&1 &&
    gadget_wait_for 10 vhci_copy >/dev/null; then
    V=$(vhci_copy)
    r=0
    while [ $((r += 1)) -le "$UROUNDS" ]; do
        s=$(cpu_snap)
        pvusb-bench-usb $Q --label "usbip$r" libusb "$V" || rc=1
        cpu_report "usbip$r" "$s"
    done
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
"$HERE/../tests/vm/gadget-vm.sh" --timeout 900 "${bins[@]}" ${files[@]+"${files[@]}"} \
    --run "$work/bench-guest.sh" -- $quick "rounds=$rounds" |
    tee "$work/out" | grep -v '^BENCH \|^COST '
vm_rc=${PIPESTATUS[0]}
set -e

# ---- the table: medians over rounds, medians of per-round ratios ----
awk -v nr="$rounds" '
function path(l) { sub(/[0-9]+$/, "", l); return l }
function round(l) { sub(/^[a-z]+/, "", l); return l }
function med(a, n,    i, j, t) { # sorts a[1..n]
    if (!n) return ""
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# median of path p in case c over its rounds
function mpath(p, c,    a, n, r) { n = 0; for (r = 1; r <= 99; r++) if ((p, r, c) in v) a[++n] = v[p, r, c]; return med(a, n) }
# median of per-round ratios p/q in case c, and their spread
function mratio(p, q, c,    a, n, r, lo, hi) {
    n = 0
    for (r = 1; r <= 99; r++) if ((p, r, c) in v && (q, r, c) in v && v[q, r, c] > 0) a[++n] = v[p, r, c] / v[q, r, c]
    if (!n) { spread = ""; return "" }
    lo = hi = a[1]; for (r = 2; r <= n; r++) { if (a[r] < lo) lo = a[r]; if (a[r] > hi) hi = a[r] }
    spread = sprintf("%.2f-%.2f", lo, hi)
    return med(a, n)
}
function f(x, d) { return x == "" ? "-" : sprintf("%." d "f", x) }
function target(c, rd, ru) {
    if (c ~ /^bulk-.*-x16$/) return (rd == "" ? "?" : rd >= 0.95 ? "ok" : "MISS") " >=0.95x direct"
    if (c ~ /^bulk-.*-x(1|4)$/) return (ru == "" ? "?" : ru >= 2 ? "ok" : "MISS") " >=2x usbip"
    if (c == "control-median") return (rd == "" ? "?" : rd <= 1.2 ? "ok" : "MISS") " <=1.2x direct (time)"
    return ""
}
$1 == "REF" { ref = $3 }
$1 == "BENCH" { p = path($2); v[p, round($2), $3] = $4; unit[$3] = $5; has[p] = 1
    if (!($3 in seen)) { seen[$3] = 1; order[n++] = $3 } }
# COST label case xfers N app-cpu-us X app-csw Y peer-cpu-us Z peer-csw W
$1 == "COST" { p = path($2); k = $3 == "control" ? "control-median" : $3
    cu[p, round($2), k] = $7 + $11; cs[p, round($2), k] = $9 + $13 }
END {
    if (!n) exit
    B = ("base" in has)
    printf "\n(%d interleaved rounds; figures: median over rounds; ratios: median of per-round ratios [min-max])\n", nr
    printf "%-17s %-4s %8s %8s %8s %8s %8s", "case", "unit", "direct", "malloc", "usbip", "pvusbip", "pvusb"
    if (B) printf " %8s %17s", "base", "base/direct"
    printf " %17s %11s %13s  %s\n", "pvusb/direct", "pvusb/usbip", "pvusbip/usbip", "target"
    for (i = 0; i < n; i++) {
        c = order[i]
        pv = mpath("pvusb", c); ub = mpath("usbip", c)
        rd = mratio("pvusb", "direct", c); sd = spread
        ru = (pv != "" && ub > 0) ? pv / ub : ""
        if (c ~ /^control/ && ru != "") ru = ub / pv # faster = bigger, like MB/s
        pi = mpath("pvusbip", c)
        rp = (pi != "" && ub > 0) ? pi / ub : ""
        if (c ~ /^control/ && rp != "") rp = ub / pi
        printf "%-17s %-4s %8s %8s %8s %8s %8s", c, unit[c], f(mpath("direct", c), 1), f(mpath("malloc", c), 1), f(ub, 1), f(pi, 1), f(pv, 1)
        if (B) { rb = mratio("base", "direct", c); printf " %8s %17s", f(mpath("base", c), 1), rb == "" ? "-" : f(rb, 2) " [" spread "]" }
        printf " %17s %11s %13s  %s\n", rd == "" ? "-" : f(rd, 2) " [" sd "]", f(ru, 2), f(rp, 2), target(c, rd, ru)
    }
    print "(direct: libusb with usbfs zero-copy buffers; malloc: libusb with ordinary buffers;"
    print " control: times, so pvusb/direct <= 1.2 is the goal and pvusb/usbip is usbip time / pvusb time;"
    print " usbip: Linux usbipd + usbip-host; pvusbip: pvusbd + pvusb-usbipd; both to vhci-hcd over loopback)"
    if (ref != "") printf "one eventfd round trip between two processes in this guest: %s us\n", ref
    # A pvusb round trip wakes the other process twice (request, response) where a direct
    # libusb program wakes nobody: no design with the frontend in another process gets
    # below direct + one such round trip on one vCPU.
    d = mpath("direct", "control-median")
    if (ref != "" && d > 0)
        printf "floor for pvusb control here (direct + one eventfd round trip): %.0f us = %.2fx direct\n", d + ref, (d + ref) / d
    # Guest CPU per transfer (user+system, the benchmark process plus pvusbd for pvusb)
    # and context switches per transfer: on one vCPU, this is where the time goes.
    printf "\n%-17s %14s %14s %14s", "per transfer", "direct us/csw", "pvusb us/csw", "usbip us/csw"
    if (B) printf " %14s", "base us/csw"
    printf "   (median CPU us; context switches, app + pvusbd)\n"
    for (i = 0; i < n; i++) {
        c = order[i]
        if (c == "control-p99") continue
        printf "%-17s", c == "control-median" ? "control" : c
        np = split(B ? "direct pvusb usbip base" : "direct pvusb usbip", ps, " ")
        for (j = 1; j <= np; j++) {
            m = 0; delete a; delete b
            for (r = 1; r <= 99; r++) if ((ps[j], r, c) in cu) { a[++m] = cu[ps[j], r, c]; b[m] = cs[ps[j], r, c] }
            x = med(a, m); y = med(b, m)
            printf " %14s", f(x, 0) "/" f(y, 1)
        }
        printf "\n"
    }
}' "$work/out"
exit $((vm_rc != 0))
