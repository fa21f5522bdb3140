#!/bin/sh
# shellcheck shell=dash
# Guest side of tests/vm/gadget-suite.sh (busybox ash, inside the gadget VM, 4 UDCs,
# --usb-audio).
# Real USB devices (configfs gadgets on dummy_hcd) go through pvusbd's libusb back-end to
# a local controller; gadget_check (tests/vm/gadget_check.c) is the guest's frontend and
# checks each device as its user would. Prints "FAIL: ..." per failed check and ends with
# "gadget: N passed, M failed".
#   gadget-suite-guest.sh [--emulated]
# --emulated (debugging the harness without the libusb back-end): emulated sourcesink and
# storage stand in for the gadgets; the checks that need a real device are skipped.
set -eu
# shellcheck source=tests/vm/gadget-initramfs/gadget.sh
. /lib/gadget.sh

EMULATED=0
[ "${1:-}" = --emulated ] && EMULATED=1

SOCK=/run/pvusb/pvusbd.sock
DOM=vm
export PVUSB_SOCKET=$SOCK
BACKING=/tmp/disk.img
SS_ID=1d6b:0104 MS_ID=1d6b:0105 HID_ID=1d6b:0106 ACM_ID=1d6b:0107
# QEMU's usb-audio (gadget-vm.sh --usb-audio): full speed, isochronous OUT on the
# streaming interface's alt 1. dummy_hcd has no isochronous, so this is the suite's
# only real isochronous endpoint.
AUDIO_ID=46f4:0002

say() { echo "gadget-suite: $*"; }

# Each check's diagnostics go to the log; on failure they are shown after FAIL.
run_logged() {
    if "$@" >/tmp/check.out 2>&1; then return 0; fi
    sed 's/^/    /' /tmp/check.out
    return 1
}
ck() { # DESCRIPTION CMD...
    local what="$1"
    shift
    check "$what" run_logged "$@"
}

# ---- gadgets: one per UDC, each on its own bus (1-1 .. 4-1) ----
make_gadgets() {
    gadget_new ss 0x1d6b 0x0104 && gadget_add_sourcesink ss bulk_buflen=16384 &&
        gadget_bind ss dummy_udc.0 &&
        gadget_new ms 0x1d6b 0x0105 && gadget_add_storage ms "$BACKING" size=64 &&
        gadget_bind ms dummy_udc.1 &&
        gadget_new hid 0x1d6b 0x0106 && gadget_add_hid hid && gadget_bind hid dummy_udc.2 &&
        gadget_new acm 0x1d6b 0x0107 && gadget_add_acm acm && gadget_bind acm dummy_udc.3
}
check "four gadgets plugged in (SourceSink, mass storage, HID, ACM)" make_gadgets

ms_intf() { echo "$(gadget_port ms):1.0"; }
audio_sysfs() {
    local d
    for d in /sys/bus/usb/devices/*; do
        if [ "$(cat "$d/idVendor" 2>/dev/null):$(cat "$d/idProduct" 2>/dev/null)" = "$AUDIO_ID" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}
audio_present() { audio_sysfs >/dev/null; }
usb_storage_bound() { [ -e "/sys/bus/usb/drivers/usb-storage/$(ms_intf)" ]; }
ms_disk() { gadget_host_node ms block; }
ms_disk_present() { ms_disk >/dev/null; }
check "usb-storage drives the storage gadget before pvusb takes it" gadget_wait_for 10 usb_storage_bound
gadget_wait_for 10 ms_disk_present || true
disk_before=$(ms_disk || echo none)

# ---- pvusbd and a controller, through the CLI ----
# /var/lib/pvusb: where pvusbd keeps its state file (a real system has it).
mkdir -p /run/pvusb /var/lib/pvusb
pvusbd -q -s "$SOCK" >/tmp/pvusbd.log 2>&1 &
pvusbd_pid=$!
gadget_wait_for 10 test -S "$SOCK" || true
ck "pvusb usbctrl-attach $DOM version=2 ports=8" pvusb usbctrl-attach "$DOM" version=2 ports=8

if [ "$EMULATED" = 1 ]; then
    say "emulated stand-ins: sourcesink and storage:/tmp/emul.img"
    SS_DEV=sourcesink MS_DEV=storage:/tmp/emul.img SS_ID=1209:7500 MS_ID=1209:7503
    MS_FILE=/tmp/emul.img
    truncate -s 64M "$MS_FILE"
else
    # Three of the name forms users write: bus path, vendor:product, bus.address.
    SS_DEV=$(gadget_port ss)
    MS_DEV=$MS_ID
    MS_FILE=$BACKING
    hid_sys=$(gadget_sysfs hid) || hid_sys=/nonexistent
    HID_DEV=$(cat "$hid_sys/busnum" 2>/dev/null).$(cat "$hid_sys/devnum" 2>/dev/null) || true
    ACM_DEV=$(gadget_port acm)
fi
ck "usbdev-attach $SS_DEV (SourceSink) controller=0 port=1" pvusb usbdev-attach "$DOM" "$SS_DEV" controller=0 port=1
ck "usbdev-attach $MS_DEV (mass storage) controller=0 port=2" pvusb usbdev-attach "$DOM" "$MS_DEV" controller=0 port=2
if [ "$EMULATED" = 0 ]; then
    ck "usbdev-attach $HID_DEV (HID) controller=0 port=3" pvusb usbdev-attach "$DOM" "$HID_DEV" controller=0 port=3
    ck "usbdev-attach $ACM_DEV (ACM) controller=0 port=4" pvusb usbdev-attach "$DOM" "$ACM_DEV" controller=0 port=4
    check "usb-storage let go of the storage gadget while pvusb holds it" gadget_wait_for 5 sh -c \
        "[ ! -e /sys/bus/usb/drivers/usb-storage/$(ms_intf) ]"
fi
pvusb usb-list "$DOM" >/tmp/usb-list.out 2>&1 || true
sed 's/^/    /' /tmp/usb-list.out

# ---- each device as the guest's USB stack sees it ----
ck "SourceSink enumerates on port 1 as $SS_ID" gadget_check enum 1 "$SS_ID"
ck "SourceSink bulk IN: 4 MiB verified byte for byte" gadget_check ss-in 1 4194304
ck "SourceSink bulk OUT: 4 MiB of the pattern accepted" gadget_check ss-out 1 4194304
ck "SourceSink control loopback and GET_DESCRIPTOR" gadget_check ss-ctrl 1
ck "mass storage enumerates on port 2 as $MS_ID" gadget_check enum 2 "$MS_ID"
ck "mass storage: a short reply with a stall (MODE SENSE), WRITE(10) lands in the backing file, READ(10) reads it back" \
    gadget_check storage 2 "$MS_FILE"

if [ "$EMULATED" = 0 ]; then
    ck "HID enumerates on port 3 as $HID_ID" gadget_check enum 3 "$HID_ID"
    ck "HID: a report written to $(gadget_hidg hid) arrives by interrupt IN" \
        gadget_check hid 3 "$(gadget_hidg hid)"
    ck "ACM enumerates on port 4 as $ACM_ID" gadget_check enum 4 "$ACM_ID"
    ck "ACM: bulk OUT reaches $(gadget_acm_tty acm), its writes arrive by bulk IN" \
        gadget_check acm 4 "$(gadget_acm_tty acm)"

    # ---- isochronous: usb-audio through pvusbd's libusb back-end, on port 5 ----
    check "usb-audio ($AUDIO_ID) is on the guest's xHCI" gadget_wait_for 10 audio_present
    audio_sys=$(audio_sysfs || echo /nonexistent)
    ck "usbdev-attach $AUDIO_ID (usb-audio) controller=0 port=5" \
        pvusb usbdev-attach "$DOM" "$AUDIO_ID" controller=0 port=5
    ck "usb-audio enumerates on port 5 as $AUDIO_ID, full speed" gadget_check enum 5 "$AUDIO_ID" full
    ck "iso OUT: 24 URBs x 12 packets, 4 in flight, each answered once in full, alt 1 then 0" \
        gadget_check iso-out 5 "$audio_sys"
    grep '^gadget_check: iso-out:' /tmp/check.out || true
    ck "iso OUT: unlinking the running URB answers it once with -ECONNRESET, the rest in full" \
        gadget_check iso-unlink 5 "$audio_sys"
    ck "iso OUT: packets with gaps between their offsets are gathered and sent" \
        gadget_check iso-gaps 5 "$audio_sys"

    # The physical unplug is done by gadget_check itself, while its URBs are in flight.
    ck "unplug under load: every URB answered once, speed 0; replug: back on port 1, enumerates" \
        gadget_check unplug 1 /sys/kernel/config/usb_gadget/ss/UDC dummy_udc.0
    grep '^gadget_check: unplug:' /tmp/check.out || true
    ck "after the replug the SourceSink streams again" gadget_check ss-in 1 1048576

    ck "usbdev-detach $DOM 0 2 (mass storage)" pvusb usbdev-detach "$DOM" 0 2
    check "after detach, usb-storage drives the storage gadget again" gadget_wait_for 10 usb_storage_bound
    check "after detach, its disk is back ($disk_before before)" gadget_wait_for 10 ms_disk_present
fi

ck "usbctrl-detach $DOM 0" pvusb usbctrl-detach "$DOM" 0
kill "$pvusbd_pid" 2>/dev/null || true
pvusbd_rc=0
wait "$pvusbd_pid" || pvusbd_rc=$?
check "pvusbd exits cleanly on SIGTERM (status $pvusbd_rc)" [ "$pvusbd_rc" -eq 0 ]

# ---- the same devices through the copying data path (the one Xen frontends get) ----
say "pvusbd again with PVUSB_LOCAL_COPY=1: request data copied through pvusbd's own memory"
PVUSB_LOCAL_COPY=1 pvusbd -q --no-state -s "$SOCK" >/tmp/pvusbd-copy.log 2>&1 &
pvusbd_pid=$!
gadget_wait_for 10 test -S "$SOCK" || true
ck "copy path: usbctrl-attach, SourceSink on port 1, mass storage on port 2" sh -c \
    "pvusb usbctrl-attach $DOM && pvusb usbdev-attach $DOM $SS_DEV controller=0 port=1 &&
     pvusb usbdev-attach $DOM $MS_DEV controller=0 port=2"
ck "copy path: SourceSink bulk IN 1 MiB verified, bulk OUT 1 MiB accepted, control loopback" sh -c \
    "gadget_check ss-in 1 1048576 && gadget_check ss-out 1 1048576 && gadget_check ss-ctrl 1"
ck "copy path: mass storage short reply + stall, WRITE(10) in the backing file, READ(10) back" \
    gadget_check storage 2 "$MS_FILE"
if [ "$EMULATED" = 0 ]; then
    ck "copy path: usb-audio iso OUT answered in full, gapped packets gathered" sh -c \
        "pvusb usbdev-attach $DOM $AUDIO_ID controller=0 port=5 &&
         gadget_check iso-out 5 $audio_sys && gadget_check iso-gaps 5 $audio_sys"
fi
ck "copy path: usbctrl-detach $DOM 0" pvusb usbctrl-detach "$DOM" 0
kill "$pvusbd_pid" 2>/dev/null || true
pvusbd_rc=0
wait "$pvusbd_pid" || pvusbd_rc=$?
check "copy path: pvusbd exits cleanly on SIGTERM (status $pvusbd_rc)" [ "$pvusbd_rc" -eq 0 ]
if [ "$failed" -ne 0 ]; then
    echo "---- pvusbd log ----"
    tail -n 40 /tmp/pvusbd.log
    echo "---- pvusbd log (copy path) ----"
    tail -n 20 /tmp/pvusbd-copy.log
fi
check_summary gadget
