#!/bin/sh
# bench/xen-bench-domu.sh: the domU half of bench/xen-bench.sh, run by the domU's /init
# (busybox) as /domu.sh once xen-hcd is loaded. It never ends: every time a device of
# interest appears on one of the domain's xen-hcd controllers it runs the benchmark for it
# and reports on the console (which dom0 reads), labelled by the controller's devid N:
#   1d6b:0104 (dom0's SourceSink gadget): pvusb-bench-usb in libusb (direct) mode,
#     BENCH ctlN <case> <value> <unit>, then PVUSB-DOMU: bench-done ctlN usb rc=<n>
#   1209:7500 (pvusbd's own emulated sourcesink): the same program, labelled emuN, then
#     PVUSB-DOMU: bench-done ctlN emul rc=<n>
#   1d6b:0105 (dom0's mass-storage gadget): disk_bench (bench/xen-bench-disk.sh) on its
#     block device, then PVUSB-DOMU: bench-done ctlN disk rc=<n>
# The benchmark program and its shared libraries are in /opt/bench (the ramdisk has no
# C library); options for it come from /opt/bench/args.
say() { echo "PVUSB-DOMU: $*"; }
BENCH_ARGS=$(cat /opt/bench/args 2>/dev/null)
. /opt/bench/xen-bench-disk.sh

# The devid of the xen-hcd controller a USB device hangs off (/sys/devices/vusb-N/...).
ctl_of() {
    p=$(readlink -f "/sys/bus/usb/devices/$1")
    case $p in
        */vusb-*) p=${p#*/vusb-}; echo "${p%%/*}" ;;
        *) echo x ;;
    esac
}

block_of() {
    for b in /sys/bus/usb/devices/"$1":1.0/host*/target*/*/block/*; do
        [ -e "$b" ] && { echo "${b##*/}"; return 0; }
    done
    return 1
}

usb_bench() { # NAME CTL KIND LABEL
    # shellcheck disable=SC2086 # BENCH_ARGS is a word list
    /opt/bench/ld-linux-x86-64.so.2 --library-path /opt/bench /opt/bench/pvusb-bench-usb \
        $BENCH_ARGS --label "$4" libusb "$1"
    say "bench-done ctl$2 $3 rc=$?"
}

disk_run() { # NAME CTL
    i=0 dev=""
    while [ $i -lt 60 ]; do
        dev=$(block_of "$1") && [ -b "/dev/$dev" ] && break
        sleep 0.5; i=$((i + 1))
    done
    if [ -z "$dev" ] || [ ! -b "/dev/$dev" ]; then
        say "bench-done ctl$2 disk rc=99 (no block device)"
        return
    fi
    say "disk /dev/$dev on ctl$2: $(cat "/sys/block/$dev/size") sectors, max_sectors_kb $(cat "/sys/block/$dev/queue/max_sectors_kb")"
    disk_bench "ctl$2" "/dev/$dev"
    say "bench-done ctl$2 disk rc=$?"
}

if [ "${1:-}" != watch ]; then
    modprobe -a usb-storage sd_mod 2>/dev/null || say "modprobe usb-storage sd_mod failed"
    echo " " >/tmp/seen
    say "bench watcher ready"
    # This machine now and then kills an ordinary process: restart the watcher.
    while :; do
        sh /domu.sh watch
        say "watcher ended (rc=$?), starting it again"
        sleep 1
    done
fi

seen=$(cat /tmp/seen)
while :; do
    now=" "
    for d in /sys/bus/usb/devices/*-*; do
        case ${d##*/} in *:*) continue ;; esac
        [ -f "$d/idVendor" ] || continue
        now="$now${d##*/}=$(cat "$d/idVendor"):$(cat "$d/idProduct") "
    done
    if [ "$now" != "$seen" ]; then
        for e in $seen; do
            case "$now" in *" $e "*) ;; *) say "remove ${e%%=*} ${e#*=}" ;; esac
        done
        # Recorded before the (long) benchmark, so that a restarted watcher skips it.
        echo "$now" >/tmp/seen
        for e in $now; do
            case "$seen" in *" $e "*) continue ;; esac
            n=${e%%=*}
            c=$(ctl_of "$n")
            say "add $n ${e#*=} ctl$c"
            case ${e#*=} in
                1d6b:0104) usb_bench "$n" "$c" usb "ctl$c" ;;
                1209:7500) usb_bench "$n" "$c" emul "emu$c" ;;
                1d6b:0105) disk_run "$n" "$c" ;;
            esac
        done
        seen=$now
    fi
    sleep 0.3
done
