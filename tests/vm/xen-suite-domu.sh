#!/bin/sh
# The domU half of tests/vm/xen-suite.sh, run by the domU's /init (busybox) as /domu.sh
# once xen-hcd is loaded. It never ends: it watches the USB devices the domain's Linux
# enumerates through xen-hcd and reports on the console (which dom0 reads):
#   PVUSB-DOMU: add <sysfs name> <vid>:<pid>@<devnum>      a device enumerated
#   PVUSB-DOMU: remove <sysfs name> <vid>:<pid>@<devnum>   a device gone
# (the device number tells a device enumerated again under the same name, as after a
# pvusbd restart, from the one before)
# and, once per device that appears:
#   1209:7503 (pvusb storage): the md5 of the first 64 KiB (written by dom0 before
#     the attach), then a known 64 KiB pattern written at 256 KiB with fsync, and the
#     md5 of that region read back after dropping the caches:
#     PVUSB-DOMU: storage <dev> read-md5 <md5> wrote-md5 <md5> reread-md5 <md5>
#   1209:7500 (pvusb sourcesink): /usr/bin/xen-usbfs-check, which moves verified bulk
#     and control data through usbfs; PVUSB-DOMU: sourcesink rc=<n>
#   1d6b:0104 (a dom0 dummy_hcd SourceSink gadget passed through): the same, bulk only;
#     PVUSB-DOMU: gadget rc=<n>
say() { echo "PVUSB-DOMU: $*"; }

# The block device under a usb-storage device's first interface, once SCSI made it.
block_of() {
    for b in /sys/bus/usb/devices/"$1":1.0/host*/target*/*/block/*; do
        [ -e "$b" ] && { echo "${b##*/}"; return 0; }
    done
    return 1
}

storage_test() {
    name=$1 i=0 dev=""
    while [ $i -lt 60 ]; do
        dev=$(block_of "$name") && [ -b "/dev/$dev" ] && break
        sleep 0.5; i=$((i + 1))
    done
    if [ -z "$dev" ] || [ ! -b "/dev/$dev" ]; then
        say "storage $name no-block-device"
        return
    fi
    r=$(dd if="/dev/$dev" bs=4096 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
    yes PVUSB-XEN-DOMU-PATTERN | head -c 65536 >/tmp/pat
    w=$(md5sum </tmp/pat | cut -d' ' -f1)
    dd if=/tmp/pat of="/dev/$dev" bs=4096 seek=64 conv=fsync 2>/dev/null
    sync
    echo 3 >/proc/sys/vm/drop_caches
    rr=$(dd if="/dev/$dev" bs=4096 skip=64 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
    say "storage $dev read-md5 $r wrote-md5 $w reread-md5 $rr"
}

# Keep a HID device open, as a desktop would: usbhid then always has an interrupt URB in
# flight (what a pvusbd crash leaves unanswered). Through hidraw (part of hid.ko; the
# ramdisk has no evdev). The reader ends when the device goes.
hold_input() {
    i=0
    while [ $i -lt 20 ]; do
        for h in /sys/bus/usb/devices/"$1":1.0/*/hidraw/hidraw*; do
            [ -c "/dev/${h##*/}" ] || continue
            cat "/dev/${h##*/}" >/dev/null 2>&1 &
            say "holding $1 /dev/${h##*/}"
            return
        done
        sleep 0.5; i=$((i + 1))
    done
    say "hold $1: no hidraw device"
}

sourcesink_test() {
    /usr/bin/xen-usbfs-check 4
    say "sourcesink rc=$?"
}

# This machine (PV under QEMU TCG) now and then crashes an ordinary process, busybox
# included: the watcher runs as a child that is started again, and keeps what it has
# seen in /tmp/seen so that a restart reports no device twice.
if [ "${1:-}" != watch ]; then
    # Nothing loads modules on hot-plug in this ramdisk: load the class drivers up front.
    modprobe -a usb-storage sd_mod usbhid hid-generic 2>/dev/null ||
        say "modprobe usb-storage sd_mod usbhid hid-generic failed"
    echo " " >/tmp/seen
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
        n=${d##*/}
        case $n in *:*) continue ;; esac
        # read, not cat: no process per device and poll (see above). A device still
        # being set up, or a read that failed, keeps what it was.
        v="" p="" dn=""
        read -r v <"$d/idVendor" 2>/dev/null
        read -r p <"$d/idProduct" 2>/dev/null
        read -r dn <"$d/devnum" 2>/dev/null
        case "$v:$p:$dn" in
            [0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9]*) now="$now$n=$v:$p@$dn " ;;
            *) case "$seen" in *" $n="*) e=${seen#*" $n="}; now="$now$n=${e%% *} " ;; esac ;;
        esac
    done
    if [ "$now" != "$seen" ]; then
        for e in $seen; do
            case "$now" in *" $e "*) ;; *) say "remove ${e%%=*} ${e#*=}" ;; esac
        done
        for e in $now; do
            case "$seen" in *" $e "*) continue ;; esac
            say "add ${e%%=*} ${e#*=}"
            case ${e#*=} in
                1209:7503@*) storage_test "${e%%=*}" ;;
                1209:7500@*) sourcesink_test ;;
                1209:7502@*) hold_input "${e%%=*}" ;;
                1d6b:0104@*) /usr/bin/xen-usbfs-check 2 1d6b:0104; say "gadget rc=$?" ;;
            esac
        done
        seen=$now
        echo "$seen" >/tmp/seen
    fi
    sleep 0.3
done
