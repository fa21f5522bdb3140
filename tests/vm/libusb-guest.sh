#!/bin/sh
# Guest side (busybox ash) of the libusb back-end's checks; run by
# tests/vm/libusb-vm.sh with --udcs 2. Needs pvusbd, pvusb, libusb-front.
# Phases: names, bulk + standard requests, iso, hot-plug, unlink (HID),
# driver give-back on detach and after a crash (mass storage).
set -u
. /lib/gadget.sh
export PVUSB_SOCKET=/tmp/pvusbd.sock
PHASES=${1:-"names bulk iso hotplug hotplug_serial unlink storage"}

start_daemon() {
    pvusbd -s "$PVUSB_SOCKET" --no-state >>/tmp/pvusbd.log 2>&1 &
    daemon_pid=$!
    gadget_wait_for 5 test -S "$PVUSB_SOCKET"
    pvusb usbctrl-attach g version=2 ports=4 >/dev/null
}
stop_daemon() {
    kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    rm -f "$PVUSB_SOCKET"
}
driver_of() { basename "$(readlink "/sys/bus/usb/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
attach() { pvusb usbdev-attach g "$1" controller=0 port=1; }
detach() { pvusb usbdev-detach g 0 1; }

phase_names() {
    # two identical SourceSink gadgets: 1-1 and 2-1
    gadget_new g1 && gadget_add_sourcesink g1 && gadget_bind g1 dummy_udc.0
    gadget_new g2 && gadget_add_sourcesink g2 && gadget_bind g2 dummy_udc.1
    libusb-front list | tee /tmp/list.txt
    check "list: 1-1 with its usb.ids names and serial" grep -q "^1-1 .* 1d6b:0104 class 00 speed 3 (480 Mb/s) serial 'pvusb-g1' 'Linux Foundation' 'Multifunction Composite Gadget' interfaces ff" /tmp/list.txt
    check "list: 2-1" grep -q "^2-1 .*serial 'pvusb-g2'" /tmp/list.txt
    check "list: root hubs are hubs" grep -q "^usb1 .* hub speed" /tmp/list.txt
    start_daemon
    out=$(attach 1d6b:0104 2>&1); rc=$?
    echo "vendor:product with two candidates: rc=$rc: $out"
    check "ambiguous vendor:product refused" [ "$rc" -ne 0 ]
    check "the error lists both bus paths" sh -c "echo '$out' | grep -q '1-1, 2-1'"
    out=$(attach 1.1 2>&1); rc=$?
    echo "root hub by bus.address: rc=$rc: $out"
    check "a hub (root hub 1.1) is refused" [ "$rc" -ne 0 ]
    check "the hub error says hub" sh -c "echo '$out' | grep -qi hub"
    out=$(attach 3-1 2>&1); rc=$?
    echo "absent bus path: rc=$rc: $out"
    check "an absent bus path is refused" [ "$rc" -ne 0 ]
    addr=$(cat /sys/bus/usb/devices/2-1/devnum)
    check "bus.address 2.$addr attaches" attach "2.$addr"
    check "it enumerates" libusb-front enum g
    check "detach" detach
    check "vendor:product:serial attaches" attach 1d6b:0104:pvusb-g1
    pvusb usb-list
    check "detach" detach
    check "host:1-1 attaches" attach host:1-1
    out=$(pvusb usbdev-attach g 1-1 controller=0 port=2 2>&1); rc=$?
    echo "same device twice: rc=$rc: $out"
    check "the same device cannot be attached twice" [ "$rc" -ne 0 ]
    check "detach" detach
    stop_daemon
    gadget_remove g2
    gadget_remove g1
}

phase_bulk() {
    gadget_new g1 && gadget_add_sourcesink g1 bulk_buflen=16384 && gadget_bind g1 dummy_udc.0
    start_daemon
    check "attach 1-1" attach 1-1
    check "bulk IN/OUT, clear halt, set configuration, stall" libusb-front bulk g 4194304
    check "detach" detach
    stop_daemon
    gadget_remove g1
}

phase_iso() {
    gadget_new g1 && gadget_add_sourcesink g1 isoc_interval=1 isoc_maxpacket=1024 &&
        gadget_bind g1 dummy_udc.0
    start_daemon
    check "attach 1-1" attach 1-1
    check "iso IN/OUT, packed and with gaps" libusb-front iso g
    check "detach" detach
    stop_daemon
    gadget_remove g1
}

phase_hotplug() { hotplug_as 1-1; }
phase_hotplug_serial() { hotplug_as 1d6b:0104:pvusb-g1; }

# Unplug and replug a gadget attached under NAME; it must come back.
hotplug_as() {
    gadget_new g1 && gadget_add_sourcesink g1 bulk_buflen=16384 && gadget_bind g1 dummy_udc.0
    start_daemon
    check "attach $1" attach "$1"
    : >/tmp/hp.log
    libusb-front hotplug g >/tmp/hp.log 2>&1 &
    hp=$!
    gadget_wait_for 10 grep -q armed /tmp/hp.log
    sleep 1
    gadget_unplug g1
    gadget_wait_for 10 grep -q '^gone' /tmp/hp.log
    pvusb usb-list | grep 'Port 1'
    gadget_replug g1
    hp_rc=0
    wait "$hp" || hp_rc=$?
    cat /tmp/hp.log
    check "in-flight URBs answered on unplug, device back after replug" [ "$hp_rc" -eq 0 ]
    pvusb usb-list | grep 'Port 1'
    check "detach after replug" detach
    check "1-1 is free again: usbfs can claim it" [ -z "$(driver_of 1-1:1.0)" ] 
    stop_daemon
    gadget_remove g1
}

phase_unlink() {
    gadget_new g1 && gadget_add_hid g1 && gadget_bind g1 dummy_udc.0
    start_daemon
    check "attach the HID gadget" attach 1-1
    check "unlinked interrupt IN completes once" libusb-front unlink g
    check "detach" detach
    stop_daemon
    gadget_remove g1
}

phase_storage() {
    gadget_new g1 && gadget_add_storage g1 /tmp/disk.img && gadget_bind g1 dummy_udc.0
    gadget_wait_for 5 test -n "$(driver_of 1-1:1.0)"
    before=$(driver_of 1-1:1.0)
    echo "1-1:1.0 driver before: $before"
    check "usb-storage drives 1-1:1.0" [ "$before" = usb-storage ]
    start_daemon
    check "attach the storage gadget" attach 1-1
    echo "1-1:1.0 driver while assigned: '$(driver_of 1-1:1.0)'"
    check "the kernel driver is detached while assigned" [ "$(driver_of 1-1:1.0)" = usbfs ]
    check "it enumerates" libusb-front enum g
    check "detach" detach
    gadget_wait_for 5 test "$(driver_of 1-1:1.0)" = usb-storage
    echo "1-1:1.0 driver after detach: '$(driver_of 1-1:1.0)'"
    check "usb-storage is back after detach" [ "$(driver_of 1-1:1.0)" = usb-storage ]
    # a crash: the claim dies with the process, the detached driver stays away
    check "attach again" attach 1-1
    kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null; rm -f "$PVUSB_SOCKET"
    sleep 0.5
    echo "1-1:1.0 driver after the crash: '$(driver_of 1-1:1.0)'"
    check "no driver after the crash" [ -z "$(driver_of 1-1:1.0)" ]
    check "reattach_drivers 1-1" libusb-front reattach 1-1
    gadget_wait_for 5 test "$(driver_of 1-1:1.0)" = usb-storage
    echo "1-1:1.0 driver after reattach: '$(driver_of 1-1:1.0)'"
    check "usb-storage is back after reattach_drivers" [ "$(driver_of 1-1:1.0)" = usb-storage ]
    out=$(libusb-front reattach 1-1)
    check "reattach again: nothing to do (0)" [ "$out" = "reattach 1-1: 0" ]
    # a clean daemon exit gives the device back too
    start_daemon
    check "attach for the shutdown check" attach 1-1
    stop_daemon
    gadget_wait_for 5 test "$(driver_of 1-1:1.0)" = usb-storage
    echo "1-1:1.0 driver after pvusbd exit: '$(driver_of 1-1:1.0)'"
    check "usb-storage is back after pvusbd exits" [ "$(driver_of 1-1:1.0)" = usb-storage ]
    gadget_remove g1
}

for p in $PHASES; do
    echo "=== $p"
    "phase_$p"
done
echo "=== pvusbd log"
cat /tmp/pvusbd.log
check_summary libusb
