#!/bin/bash
# bench/xen-bench-dom0.sh: the dom0 half of bench/xen-bench.sh (run as /root/test.sh by
# tests/vm/xen-vm.sh). One boot, one PV domU "bench" with up to two xen-hcd controllers:
#   devid 0: type=qusb (QEMU's own PVUSB backend) when qemu-system-xen is in dom0,
#   devid N: type=pv, served by pvusbd (xl usbctrl-attach).
# The same dom0 dummy_hcd gadget goes through three paths in turn:
#   dom0    the benchmark in dom0 directly on the gadget,
#   pvusbd  `pvusb usbdev-attach` to the pv controller, the benchmark in the domU,
#   qusb    `xl usbdev-attach hostbus= hostaddr=` to the qusb controller, ditto,
# first a SourceSink gadget (pvusb-bench-usb in libusb mode), then a mass-storage gadget
# on a tmpfs file (dd O_DIRECT, bench/xen-bench-disk.sh). Every figure is printed as
#   BENCH <path> <case> <value> <unit>
# plus CPU lines (the backend process's CPU share while the domU ran) and NOTE lines
# (why a path is missing). bench/xen-bench.sh turns them into the table.
set -uo pipefail
. /lib/xen-test.sh
. /lib/gadget.sh
usleep() { sleep "0.0$(printf '%05d' "$1")"; } # gadget.sh polls with busybox's usleep

BENCH_ARGS=$(cat /opt/bench/args 2>/dev/null)
. /opt/bench/xen-bench-disk.sh
note() { echo "NOTE $*"; }
# This machine now and then wedges an ordinary dom0 process for good (a forked bash in
# futex_wait_queue, tr spinning: see xen-suite-dom0.sh); twice a $(...) in a wait loop here
# never returned. So the waits below fork nothing: the domU console is followed by ONE
# long-lived reader that raises flag files, and the loops use bash built-ins only.
exec {SLEEPFD}<> <(:)
nap() { read -r -t "$1" -u "$SLEEPFD" _ 2>/dev/null; return 0; } # a sleep without a fork
uptime_s() { local u _; read -r u _ </proc/uptime; echo "$u"; }
step() { echo "XEN-BENCH: $* (dom0 up $(uptime_s) s)"; echo "$*" >/tmp/bench-step; }
rc=0 REMOVES=0
# Seconds one domU benchmark may take (a full USB run is ~30 s plus 2000 control round
# trips; a disk run ~4 x 10 s).
DOMU_LIMIT=${DOMU_LIMIT:-240}

console() { echo "/var/log/xen/console/guest-$1.log"; }
# The follower: prints the domU console live as "[domU] ..." (so its BENCH lines are not
# taken for dom0's; the host maps ctlN to the path), and raises
#   /tmp/flags/done-ctlN-KIND  on "PVUSB-DOMU: bench-done ctlN KIND ..."
#   /tmp/flags/removed-K       on the K-th "PVUSB-DOMU: remove ..."
#   /tmp/flags/ready           on "PVUSB-DOMU: bench watcher ready"
follow_domu() {
    local l k=0 w k2
    while IFS= read -r l; do
        l=${l%$'\r'}
        echo "[domU] $l"
        case $l in
            "PVUSB-DOMU: bench-done "*) # ... bench-done ctlN KIND rc=..
                w=${l#"PVUSB-DOMU: bench-done "}; w=${w%% rc=*}; k2=${l##* rc=}
                echo "${k2%% *}" >"/tmp/flags/done-${w/ /-}" ;;
            "PVUSB-DOMU: remove "*) k=$((k + 1)); : >"/tmp/flags/removed-$k" ;;
            "PVUSB-DOMU: bench watcher ready"*) : >/tmp/flags/ready ;;
        esac
    done
}
wait_flag() { # NAME SECONDS
    local end=$(( ${EPOCHREALTIME/./} + $2 * 1000000 ))
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        [ -e "/tmp/flags/$1" ] && return 0
        nap 0.5
    done
    echo "XEN-BENCH: no '$1' from the domU within $2 s" >&2
    return 1
}
# Process CPU ticks (utime + stime) into CPU_K, without a fork.
ticks() { local f=(); read -r -a f <"/proc/$1/stat" 2>/dev/null; CPU_K=$(( ${f[13]:-0} + ${f[14]:-0} )); }
# CPU share of process PID between two snapshots: "CPU <path> <what> <percent>"
# Domain CPU seconds as Xen counts them (xl list's Time(s)): "<dom0> <domU>".
dom_secs() { xl list 2>/dev/null | awk '$1 == "Domain-0" { d = $6 } $1 == "bench" { u = $6 } END { print d + 0, u + 0 }'; }
cpu_begin() { ticks "$1"; CPU_K0=$CPU_K CPU_T0=$EPOCHREALTIME; DOM_S0=$(dom_secs); }
cpu_end() { # PID PATH WHAT
    ticks "$1"
    awk -v k0="$CPU_K0" -v k1="$CPU_K" -v a="$CPU_T0" -v b="$EPOCHREALTIME" -v hz="$(getconf CLK_TCK)" \
        -v p="$2" -v w="$3" -v s0="$DOM_S0" -v s1="$(dom_secs)" 'BEGIN {
        if (b <= a) exit
        split(s0, x, " "); split(s1, y, " "); t = b - a
        printf "CPU %s %s %.0f%% of one dom0 vCPU; the machine: dom0 %.0f%%, domU %.0f%%, idle or Xen %.0f%%\n",
            p, w, 100 * (k1 - k0) / hz / t, 100 * (y[1] - x[1]) / t, 100 * (y[2] - x[2]) / t,
            100 - 100 * (y[1] - x[1] + y[2] - x[2]) / t }'
}

# Run one domU path: attach with ATTACH_CMD, wait for the domU's result, detach.
domu_path() { # PATH CTL KIND BACKEND_PID ATTACH_CMD... -- DETACH_CMD...
    local path=$1 ctl=$2 kind=$3 pid=$4 a=() d=() t0
    shift 4
    while [ $# -gt 0 ] && [ "$1" != -- ]; do a+=("$1"); shift; done
    shift; d=("$@")
    step "$kind via $path (controller $ctl): ${a[*]}"
    t0=$(xt_now)
    if ! timeout -k 5 60 "${a[@]}"; then
        note "$path $kind: attach failed: ${a[*]}"; rc=1; return 1
    fi
    cpu_begin "$pid"
    if wait_flag "done-ctl$ctl-$kind" "$DOMU_LIMIT"; then
        cpu_end "$pid" "$path-$kind" "$([ "$path" = qusb ] && echo qemu || echo pvusbd)"
        local drc=""
        read -r drc <"/tmp/flags/done-ctl$ctl-$kind"
        [ "$drc" = 0 ] || { note "$path $kind: the domU benchmark failed (rc=$drc; its console above says why)"; rc=1; }
    else
        note "$path $kind: no result from the domU within $DOMU_LIMIT s"; rc=1
        echo "XEN-BENCH: processes:"; ps -eo pid,stat,wchan:24,args --no-headers | grep -v ' \[' | sed 's/^/    /'
        [ "$path" = pvusbd ] && { pvusb usb-list bench 2>&1 | sed 's/^/    /'; tail -n 20 /tmp/pvusbd.log | sed 's/^/    [pvusbd] /'; }
    fi
    echo "XEN-BENCH: $path $kind took $(xt_since "$t0") s"
    timeout -k 5 60 "${d[@]}" || { note "$path $kind: detach failed: ${d[*]}"; rc=1; }
    # Until the domU saw it go (one more "remove" line), before the next attach.
    REMOVES=$((REMOVES + 1))
    wait_flag "removed-$REMOVES" 60 || true
}

# A heartbeat: tells a dom0 that waits from one that hangs (this machine has hung).
(last="" same=0
while sleep 30; do
    st=$(cat /tmp/bench-step 2>/dev/null)
    if [ "$st" = "$last" ]; then same=$((same + 1)); else same=0 last=$st; fi
    echo "XEN-BENCH-HB: dom0 up $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1 /proc/loadavg), at: $st"
    [ "$same" = 4 ] && ps -eo pid,ppid,stat,wchan:24,args --no-headers | grep -v ' \[' | sed 's/^/XEN-BENCH-HB:   /'
done) &
HB=$!

modprobe -a dummy_hcd libcomposite usb_f_ss_lb usb_f_mass_storage usb-storage sd_mod ||
    { note "modprobe of the gadget modules failed"; exit 1; }

# ---- qusb possible?
QEMU=/usr/libexec/xen-qemu-system-i386
QUSB=1
if [ ! -x "$QEMU" ]; then
    QUSB=0; note "qusb: $QEMU missing (qemu-system-xen not installed in dom0)"
fi

# ---- pvusbd
mkdir -p /run/pvusb
pvusbd --no-state >/tmp/pvusbd.log 2>&1 &
PVUSBD=$!
for _ in $(seq 100); do [ -S /run/pvusb/pvusbd.sock ] && break; sleep 0.1; done
[ -S /run/pvusb/pvusbd.sock ] || { note "pvusbd did not start"; cat /tmp/pvusbd.log; }

# ---- the domU: qusb controller from its config (libxl then starts QEMU for it)
step "starting the domU"
rm -rf /tmp/flags; mkdir -p /tmp/flags
# The same clock as dom0 (xen-bench.sh boots dom0 with clocksource=xen).
export XT_DOMU_ARGS="${XT_DOMU_ARGS:-} clocksource=xen"
t0=$(xt_now)
if [ "$QUSB" = 1 ]; then
    if ! start_domu bench "type=qusb,version=2,ports=4" /opt/bench/xen-bench-domu.sh; then
        QUSB=0; note "qusb: xl create with usbctrl type=qusb failed (see above); trying without"
        xl destroy bench 2>/dev/null
        start_domu bench "" /opt/bench/xen-bench-domu.sh || { note "xl create failed"; exit 1; }
    fi
else
    start_domu bench "" /opt/bench/xen-bench-domu.sh || { note "xl create failed"; exit 1; }
fi
tail -n +1 -F "$(console bench)" 2>/dev/null | follow_domu &
RELAY=$!
wait_flag ready 180 || { note "domU did not start"; exit 1; }
echo "XEN-BENCH: domU up after $(xt_since "$t0") s"
DOMID=$(domu_id bench)
QPID=""
if [ "$QUSB" = 1 ]; then
    QPID=$(pgrep -f "xen-qemu-system-i386.*-xen-domid $DOMID" | head -n 1)
    echo "XEN-BENCH: QEMU for domain $DOMID: pid ${QPID:-none}: $(tr '\0' ' ' <"/proc/$QPID/cmdline" 2>/dev/null | cut -c1-300)"
    [ -n "$QPID" ] || { QUSB=0; note "qusb: no QEMU process for domain $DOMID after xl create"; }
fi

# ---- the pv controller, served by pvusbd
PV=""
if timeout 60 xl usbctrl-attach bench type=pv version=2 ports=8; then
    PV=$(xenstore-list "/local/domain/0/backend/vusb/$DOMID" 2>/dev/null | tail -n 1)
    for _ in $(seq 60); do
        [ "$(xenstore-read "/local/domain/$DOMID/device/vusb/$PV/state" 2>/dev/null)" = 4 ] && break
        sleep 0.5
    done
    echo "XEN-BENCH: pv controller devid $PV, frontend state $(xenstore-read "/local/domain/$DOMID/device/vusb/$PV/state" 2>&1)"
else
    note "pvusbd: xl usbctrl-attach type=pv failed"; rc=1
fi
xl usb-list bench 2>&1 | sed 's/^/XEN-BENCH: /'

# The gadget at $P (sysfs $S) through one domU path.
via() { # qusb|pvusbd usb|disk
    case $1 in
        qusb)
            [ "$QUSB" = 1 ] || return 0
            # dom0's usb-storage lets go of the interface first (testbeds.md 2).
            [ "$2" = disk ] && [ -e "/sys/bus/usb/drivers/usb-storage/$P:1.0" ] &&
                echo "$P:1.0" >/sys/bus/usb/drivers/usb-storage/unbind
            domu_path qusb 0 "$2" "$QPID" xl usbdev-attach bench hostbus="$(cat "$S/busnum")" \
                hostaddr="$(cat "$S/devnum")" controller=0 port=1 -- xl usbdev-detach bench 0 1 ;;
        pvusbd)
            [ -n "$PV" ] || return 0
            # pvusbd takes the device from whichever dom0 driver has it, and gives it back.
            domu_path pvusbd "$PV" "$2" "$PVUSBD" pvusb usbdev-attach bench "$P" controller="$PV" port=1 \
                -- pvusb usbdev-detach bench "$PV" 1 ;;
    esac
}
# Default qusb first: should a path wedge this machine, the figures before it are kept.
ORDER=$(cat /opt/bench/order 2>/dev/null || echo qusb pvusbd)
echo "XEN-BENCH: order of the domU paths: $ORDER"

# ================================================================ 1. USB bulk/control
step "SourceSink gadget"
if gadget_new ss 0x1d6b 0x0104 && gadget_add_sourcesink ss bulk_buflen=65536 && gadget_bind ss; then
    P=$(gadget_port ss)
    S=/sys/bus/usb/devices/$P
    echo "XEN-BENCH: SourceSink gadget at $P (bus $(cat "$S/busnum") addr $(cat "$S/devnum"))"
    step "usb dom0 direct"
    # shellcheck disable=SC2086
    /opt/bench/pvusb-bench-usb $BENCH_ARGS --label dom0 libusb "$P" || { note "dom0 usb bench failed"; rc=1; }
    for path in $ORDER; do via "$path" usb; done
    gadget_remove ss || note "could not remove the SourceSink gadget"
else
    note "no SourceSink gadget"; rc=1
fi

# ================================================================ 2. disk
step "mass-storage gadget"
mkdir -p /run/gdisk && mount -t tmpfs -o size=200m tmpfs /run/gdisk
dd if=/dev/zero of=/run/gdisk/disk.img bs=1M count=128 2>/dev/null
if gadget_new disk 0x1d6b 0x0105 && gadget_add_storage disk /run/gdisk/disk.img && gadget_bind disk; then
    P=$(gadget_port disk)
    S=/sys/bus/usb/devices/$P
    echo "XEN-BENCH: storage gadget at $P (bus $(cat "$S/busnum") addr $(cat "$S/devnum"))"
    if gadget_wait_for 30 gadget_host_node disk block >/dev/null; then
        DEV=$(gadget_host_node disk block)
        echo "XEN-BENCH: dom0 disk $DEV: max_sectors_kb $(cat "/sys/block/${DEV#/dev/}/queue/max_sectors_kb")"
        step "disk dom0 direct"
        disk_bench dom0 "$DEV" || { note "dom0 disk bench failed"; rc=1; }
    else
        note "dom0: no block device for the storage gadget"; rc=1
    fi
    for path in $ORDER; do via "$path" disk; done
else
    note "no storage gadget"; rc=1
fi

# ================================================================ 3. the transport alone
# pvusbd's emulated sourcesink on the pv controller: the same domU program, but no host
# device behind pvusbd (no libusb, usbfs or dummy_hcd): what the Xen rings, grant copies,
# event channels and xen-hcd cost by themselves, the floor under the pvusbd column.
if [ -n "$PV" ]; then
    domu_path pvusbd "$PV" emul "$PVUSBD" pvusb usbdev-attach bench sourcesink:speed=high \
        controller="$PV" port=1 -- pvusb usbdev-detach bench "$PV" 1
fi

step "done"
echo "===== pvusbd log (last 30 lines) ====="
tail -n 30 /tmp/pvusbd.log | sed 's/^/[pvusbd] /'
if [ "$QUSB" = 1 ]; then
    qlog=/var/log/xen/qemu-dm-bench.log
    [ -f "$qlog" ] && { echo "===== $qlog ====="; tail -n 30 "$qlog" | sed 's/^/[qemu] /'; }
fi
timeout 60 xl destroy bench || true
kill "$RELAY" "$HB" 2>/dev/null
exit $rc
