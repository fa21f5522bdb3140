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
# ---- pvusb-usbipd: emulated devices to Linux's own USB/IP client (usbip + vhci-hcd) ----
# Last: loading vhci-hcd adds USB buses. The client is the guest's kernel, over loopback.
say "pvusb-usbipd: sourcesink and storage exported over USB/IP to usbip attach / vhci-hcd"
UIMG=/tmp/usbip.img
dd if=/dev/zero of=$UIMG bs=1M count=8 2>/dev/null
pvusbd -q --no-state -s "$SOCK" >/tmp/pvusbd-usbip.log 2>&1 &
pvusbd_pid=$!
gadget_wait_for 10 test -S "$SOCK" || true
ck "usbip: controller 'usbip' with the emulated sourcesink (port 1) and storage (port 2)" sh -c \
    "pvusb usbctrl-attach usbip && pvusb usbdev-attach usbip sourcesink controller=0 port=1 &&
     pvusb usbdev-attach usbip storage:$UIMG controller=0 port=2"
pvusb-usbipd -n usbip -l 127.0.0.1 >/tmp/usbipd.log 2>&1 &
usbipd_pid=$!
vhci_dev() { # VID PID: the sysfs name of that device on a vhci-hcd bus
    local d
    for d in /sys/bus/usb/devices/*; do
        [ "$(cat "$d/idVendor" 2>/dev/null):$(cat "$d/idProduct" 2>/dev/null)" = "$1:$2" ] || continue
        case $(readlink -f "$d") in *vhci_hcd*) basename "$d"; return 0 ;; esac
    done
    return 1
}
listed() { usbip list -r 127.0.0.1 >/tmp/usbip-list.out 2>&1 && grep -q "pvusb-$1:" /tmp/usbip-list.out; }
usbip_sd() { # the sd disk behind the vhci-attached storage
    local b
    for b in /sys/block/sd*; do
        case $(readlink -f "$b") in *vhci_hcd*) basename "$b"; return 0 ;; esac
    done
    return 1
}
ck "usbip: vhci-hcd loaded" modprobe vhci-hcd
offers_both() {
    gadget_wait_for 10 listed 1 && grep -q '1209:7500' /tmp/usbip-list.out &&
        grep -q 'pvusb-2:' /tmp/usbip-list.out && grep -q '1209:7503' /tmp/usbip-list.out ||
        { cat /tmp/usbip-list.out; return 1; }
}
ck "usbip: 'usbip list -r' shows pvusb-1 (1209:7500) and pvusb-2 (1209:7503)" offers_both
ck "usbip: 'usbip attach -b pvusb-1' succeeds" usbip attach -r 127.0.0.1 -b pvusb-1
vhci_has() { vhci_dev "$1" "$2" >/dev/null; }
check "usbip: the guest kernel enumerates 1209:7500 on the vhci-hcd bus" gadget_wait_for 15 vhci_has 1209 7500
ck "usbip: sourcesink through USB/IP: control loopback, 2 MiB bulk IN verified, 2 MiB bulk OUT accepted" \
    usbfs_check 2 1209:7500
offers_only_2() { listed 2 && ! grep -q 'pvusb-1:' /tmp/usbip-list.out; }
ck "usbip: 'usbip list -r' no longer offers the imported pvusb-1" offers_only_2
ck "usbip: 'usbip attach -b pvusb-2' succeeds" usbip attach -r 127.0.0.1 -b pvusb-2
has_sd() { usbip_sd >/dev/null; }
check "usbip: the storage becomes a disk through usb-storage" gadget_wait_for 20 has_sd
usbip_disk_rw() {
    local sd
    sd=$(usbip_sd) || return 1
    dd if=/dev/urandom of=/tmp/usbip-data bs=64k count=48 2>/dev/null &&
        dd if=/tmp/usbip-data of="/dev/$sd" bs=64k seek=16 oflag=direct 2>/dev/null && sync &&
        dd if="/dev/$sd" of=/tmp/usbip-back bs=64k skip=16 count=48 iflag=direct 2>/dev/null &&
        cmp /tmp/usbip-data /tmp/usbip-back &&
        dd if=$UIMG of=/tmp/usbip-img bs=64k skip=16 count=48 2>/dev/null &&
        cmp /tmp/usbip-data /tmp/usbip-img
}
ck "usbip: 3 MiB written with O_DIRECT read back, and the same bytes in pvusbd's image file" usbip_disk_rw
in_use() { [ "$(usbip port 2>/dev/null | grep -c 'Port in Use')" -ge 2 ]; }
ck "usbip: 'usbip port' lists both imports" in_use
vhci_gone() { ! vhci_dev "$1" "$2" >/dev/null; }
detach_ss() { # the vhci port whose import is pvusb-1 ("Port 00: <Port in Use> ...")
    local p
    p=$(usbip port 2>/dev/null | grep -B3 'pvusb-1' | sed -n 's/^Port \([0-9]*\):.*/\1/p' | head -n 1)
    [ -n "$p" ] && usbip detach -p "$p"
}
ck "usbip: 'usbip detach' of the sourcesink" detach_ss
check "usbip: 1209:7500 gone from the vhci bus" gadget_wait_for 10 vhci_gone 1209 7500
check "usbip: pvusb-1 offered again after the client let it go" gadget_wait_for 10 listed 1
ck "usbip: pvusb usbdev-detach of the imported storage" pvusb usbdev-detach usbip 0 2
check "usbip: the storage leaves the guest by itself (the server closed its client)" \
    gadget_wait_for 15 vhci_gone 1209 7503
kill "$usbipd_pid" 2>/dev/null || true
usbipd_rc=0
wait "$usbipd_pid" || usbipd_rc=$?
check "usbip: pvusb-usbipd exits cleanly on SIGTERM (status $usbipd_rc)" [ "$usbipd_rc" -eq 0 ]
kill "$pvusbd_pid" 2>/dev/null || true
wait "$pvusbd_pid" || true
if [ "$failed" -ne 0 ]; then
    echo "---- pvusb-usbipd log ----"
    tail -n 30 /tmp/usbipd.log
    echo "---- pvusbd log (usbip) ----"
    tail -n 20 /tmp/pvusbd-usbip.log
fi

if [ "$failed" -ne 0 ]; then
    echo "---- pvusbd log ----"
    tail -n 40 /tmp/pvusbd.log
    echo "---- pvusbd log (copy path) ----"
    tail -n 20 /tmp/pvusbd-copy.log
fi
check_summary gadget
