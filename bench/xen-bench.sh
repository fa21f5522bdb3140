#!/usr/bin/env bash
# xen-bench.sh - the issue's benchmark in the Xen machine (tests/vm/xen-vm.sh: Xen 4.17
# under QEMU TCG, Debian dom0, PV domU with the upstream xen-hcd), all in ONE boot:
#
#   USB   bench/bench_usb.c in libusb (direct) mode against a dom0 dummy_hcd SourceSink
#         gadget (pattern 1): bulk IN/OUT at 16 KiB (and 64 KiB) with 1, 4, 16 in flight,
#         GET_DESCRIPTOR round trips (median, p99);
#   disk  a dom0 mass-storage gadget on a tmpfs file used as a disk: dd with O_DIRECT,
#         64 KiB and 1 MiB blocks, read and write (bench/xen-bench-disk.sh);
#
# each over three paths:
#   dom0    in dom0, directly on the gadget (/dev/bus/usb, /dev/sdX);
#   pvusbd  in the domU through pvusbd (xl usbctrl-attach type=pv; pvusb usbdev-attach);
#   qusb    in the domU through QEMU's own PVUSB backend (qemu-system-xen in dom0,
#           usbctrl type=qusb in the domain config, xl usbdev-attach hostbus= hostaddr=).
# and, as a fourth column, emul: the USB program in the domU against pvusbd's own emulated
# sourcesink (no host device behind pvusbd), the cost of the Xen transport and xen-hcd alone.
# The domU runs the very same program (shipped with its shared libraries) and its own
# busybox dd. The table gives each figure, the same-boot ratios pvusbd/qusb and
# pvusbd/dom0, and the issue's targets marked ok/MISS.
#
#   bench/xen-bench.sh [BUILD_DIR] [--quick] [--no-qusb] [--pvusbd-first] [--keep-log FILE]
#                      [--timeout S]
#
# BUILD_DIR (default build-B) must be configured with -Dxen=enabled and built
# (ninja -C BUILD_DIR src/daemon/pvusbd src/cli/pvusb bench/pvusb-bench-usb); this
# script builds nothing. --quick: 0.3 s per bulk case and 300 control round trips instead
# of 1.5 s and 2000. --no-qusb: no qemu-system-xen in dom0 (pvusbd against dom0 only).
# The domU paths run qusb then pvusbd on each gadget; --pvusbd-first swaps them.
# PVUSB_XEN_SMP (default 1, as xen-vm.sh) sets the machine's CPUs: dom0 and the domU
# share them. Needs root (xen-vm.sh). About 6-10 minutes on a loaded 2-core host.
# Not a test: the exit status is 1 only when a path failed to produce its figures,
# never because a target was missed.
set -eu

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
build=$ROOT/build-B
quick=""
qusb=1
order="qusb pvusbd"
keep=""
timeout=1500
usage() { echo "usage: $0 [BUILD_DIR] [--quick] [--no-qusb] [--pvusbd-first] [--keep-log FILE] [--timeout S]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) quick=--quick ;;
    --no-qusb) qusb=0 ;;
    --pvusbd-first) order="pvusbd qusb" ;;
    --keep-log) [[ -n ${2:-} ]] || usage; keep=$2; shift ;;
    --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; timeout=$2; shift ;;
    -h|--help) sed -n '2,/^# never because/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) usage ;;
    *) build=$1 ;;
    esac
    shift
done
for b in src/daemon/pvusbd src/cli/pvusb bench/pvusb-bench-usb; do
    [[ -x $build/$b ]] || { echo "xen-bench: $build/$b missing: meson setup $build -Dxen=enabled && ninja -C $build" >&2; exit 1; }
done
ldd "$build/src/daemon/pvusbd" | grep -q libxenstore ||
    { echo "xen-bench: $build/src/daemon/pvusbd has no xen transport (configure with -Dxen=enabled)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/xen-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The bundle for dom0 and the domU: the benchmark, its shared libraries and loader (the
# domU ramdisk is busybox only; it runs ld-linux --library-path /opt/bench), the scripts.
b=$work/bench
mkdir -p "$b"
cp "$build/bench/pvusb-bench-usb" "$b/"
ldd "$build/bench/pvusb-bench-usb" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do cp -L "$lib" "$b/"; done
[[ -f $b/ld-linux-x86-64.so.2 ]] || { echo "xen-bench: no ld-linux-x86-64.so.2 among the benchmark's libraries" >&2; exit 1; }
cp "$HERE/xen-bench-disk.sh" "$HERE/xen-bench-domu.sh" "$b/"
echo "$quick" >"$b/args"
echo "$order" >"$b/order"

# dom0 on the xen clocksource from the start: under TCG its TSC watchdog otherwise
# switches clocksource mid-run (seen right before this machine stopped answering).
export PVUSB_XEN_DOM0_ARGS=${PVUSB_XEN_DOM0_ARGS-clocksource=xen}
pkgs=()
[[ $qusb = 1 ]] && pkgs=(--dom0-pkgs qemu-system-xen)
log=$work/console.log
set +e
"$ROOT/tests/vm/xen-vm.sh" --timeout "$timeout" ${pkgs[@]+"${pkgs[@]}"} \
    --file "$build/src/daemon/pvusbd:/usr/local/sbin/pvusbd" \
    --file "$build/src/cli/pvusb:/usr/local/bin/pvusb" \
    --file "$ROOT/tests/vm/gadget-initramfs/gadget.sh:/lib/gadget.sh" \
    --file "$b:/opt/bench" --domu-file "$b:/opt/bench" \
    --run "$HERE/xen-bench-dom0.sh" >"$log" 2>&1 &
vm=$!
# Progress only; the figures come in the table.
tail -n +1 -F --pid=$vm "$log" 2>/dev/null | grep --line-buffered -aE '^(XEN-BENCH|NOTE|CPU|BENCH|xen-vm|\[domU\] (BENCH|PVUSB-DOMU: bench-done))' &
wait $vm
vm_rc=$?
sleep 0.5
set -e
[[ -z $keep ]] || cp "$log" "$keep"

tr -d '\r' <"$log" | awk -v smp="${PVUSB_XEN_SMP:-1}" -v quick="$quick" -v qusb="$qusb" '
function rec(p, c, x, u) { v[p, c] = x; unit[c] = u; if (!(c in seen)) { seen[c] = 1; order[n++] = c } }
# dom0 prints its own figures; the domU ones come as "[domU] BENCH ctlN ...", N being the
# controller devid: the pv one (pvusbd) as dom0 reports it, 0 the qusb one from the config.
/^XEN-BENCH: pv controller devid / { pvctl = $5; sub(/,$/, "", pvctl) }
$1 == "BENCH" { rec($2, $3, $4, $5) }
$1 == "[domU]" && $2 == "BENCH" && $3 ~ /^emu/ { rec("emul", $4, $5, $6); next }
$1 == "[domU]" && $2 == "BENCH" { c = $3; sub(/^ctl/, "", c)
    rec(c == pvctl ? "pvusbd" : c == "0" ? "qusb" : "ctl" c, $4, $5, $6) }
$1 == "CPU" { cpu[++nc] = $0 }
$1 == "NOTE" { sub(/^NOTE /, ""); note[++nn] = $0 }
function f(x) { return x == "" ? "-" : sprintf(x >= 100 ? "%.0f" : "%.2f", x) }
function r(x) { return x == "" ? "-" : sprintf("%.2f", x) }
function get(p, c) { return ((p, c) in v) ? v[p, c] : "" }
function mark(x, ok) { return x == "" ? "?" : (ok ? "ok" : "MISS") }
END {
    if (!n) { print "xen-bench: no figures at all"; exit }
    printf "\nXen 4.17 PV domU under QEMU TCG, %s CPU(s), one boot; %s\n", smp, quick ? "--quick runs" : "full runs"
    printf "%-16s %-4s %9s %9s %9s %11s %11s %9s  %s\n", "case", "unit", "dom0", "pvusbd", "qusb", "pvusbd/qusb", "pvusbd/dom0", "emul", "targets"
    for (i = 0; i < n; i++) {
        c = order[i]; d = get("dom0", c); p = get("pvusbd", c); q = get("qusb", c)
        rq = rd = ""; t = ""
        if (c ~ /^control/) {
            # times: pvusbd/qusb as a speed-up (qusb time / pvusbd time), pvusbd/dom0 as a time ratio
            if (p > 0 && q != "") rq = q / p
            if (p != "" && d > 0) rd = p / d
            if (c == "control-median") t = mark(rd, rd <= 2) " <=2x dom0 (time)"
        } else {
            if (p != "" && q > 0) rq = p / q
            if (p != "" && d > 0) rd = p / d
            if (c ~ /^bulk-.*-16k-/ || c ~ /^disk-/)
                t = mark(rq, rq >= 3) " >=3x qusb, " mark(rd, rd >= 0.5) " >=0.5x dom0"
        }
        printf "%-16s %-4s %9s %9s %9s %11s %11s %9s  %s\n", c, unit[c], f(d), f(p), f(q), r(rq), r(rd), f(get("emul", c)), t
    }
    print "(MB = 10^6 bytes; control rows are times in us: their pvusbd/qusb is qusb time / pvusbd"
    print " time, their pvusbd/dom0 is pvusbd time / dom0 time; 64 KiB bulk rows and p99 are informative;"
    print " emul: the same domU program on pvusbd'"'"'s own emulated sourcesink, no host device behind"
    print " pvusbd: the Xen transport and xen-hcd alone, the floor under the pvusbd column)"
    for (i = 1; i <= nc; i++) print cpu[i]
    for (i = 1; i <= nn; i++) print "note: " note[i]
    np = split(qusb ? "dom0 pvusbd qusb" : "dom0 pvusbd", ps, " ")
    for (j = 1; j <= np; j++) {
        if (get(ps[j], "bulk-in-16k-x1") == "") print "xen-bench: no USB figures for " ps[j]
        if (get(ps[j], "disk-read-64k") == "") print "xen-bench: no disk figures for " ps[j]
    }
}' | tee "$work/table"
missing=0
grep -q '^xen-bench: no ' "$work/table" && missing=1
[[ $vm_rc = 0 ]] || echo "xen-bench: xen-vm.sh exited with $vm_rc (dom0 script rc, or 124 timeout / 125 crash / 126 no result)"
exit $((missing || vm_rc != 0))
