#!/bin/sh
# Self-test of /lib/gadget.sh (runs inside the guest): every gadget kind, four gadgets
# plugged at once on four UDCs, a composite gadget, and the USB/IP loopback path.
#   tests/vm/gadget-vm.sh --udcs 4 --run tests/vm/guest/gadgets.sh [--bin .../usbprobe]
set -eu
# shellcheck source=tests/vm/gadget-initramfs/gadget.sh
. /lib/gadget.sh


[ "$(gadget_udcs | wc -l)" -ge 4 ] || { echo "needs --udcs 4"; exit 2; }

# Host-side class drivers, so that the kernel itself uses the HID and ACM gadgets.
modprobe usbhid
modprobe hid-generic
modprobe cdc-acm

# Four gadgets at once, one per UDC.
gadget_new disk
gadget_add_storage disk /run/disk.img size=16
gadget_bind disk dummy_udc.0
gadget_new kbd 0x1d6b 0x0105
gadget_add_hid kbd
gadget_bind kbd dummy_udc.1
gadget_new ser 0x1d6b 0x0106
gadget_add_acm ser
gadget_bind ser dummy_udc.2
gadget_new combo 0x1d6b 0x0107
gadget_add_sourcesink combo 16384 bulk_qlen=8
gadget_add_hid combo
gadget_add_acm combo
gadget_bind combo dummy_udc.3

check "disk at 1-1" [ "$(gadget_port disk)" = 1-1 ]
check "kbd at 2-1" [ "$(gadget_port kbd)" = 2-1 ]
check "ser at 3-1" [ "$(gadget_port ser)" = 3-1 ]
check "combo at 4-1" [ "$(gadget_port combo)" = 4-1 ]
check "combo has 4 interfaces (SourceSink, HID, ACM x2)" \
    [ "$(tr -d ' ' </sys/bus/usb/devices/4-1/bNumInterfaces)" = 4 ]
check "SourceSink bulk_buflen set" \
    [ "$(cat /sys/kernel/config/usb_gadget/combo/functions/SourceSink.0/bulk_buflen)" = 16384 ]

# Mass storage: data written to the host's /dev/sda lands in the backing file.
check "usb-storage made /dev/sda" gadget_wait_for 10 test -b /dev/sda
check "gadget_host_node finds sda" [ "$(gadget_host_node disk block)" = /dev/sda ]
if [ -b /dev/sda ]; then
    dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 2>/dev/null
    dd if=/tmp/pattern of=/dev/sda bs=1M oflag=direct conv=fsync 2>/dev/null
    check "sda write reaches the backing file" \
        [ "$(md5sum </tmp/pattern)" = "$(head -c 4194304 /run/disk.img | md5sum)" ]
    check "sda size 16 MiB" [ "$(cat /sys/block/sda/size)" = 32768 ]
fi

# HID: an input report written on the gadget side is read from the host's hidraw.
gadget_wait_for 10 gadget_host_node kbd hidraw >/dev/null || :
hidraw=$(gadget_host_node kbd hidraw) || :
check "kbd has a hidraw node" [ -c "$hidraw" ]
if [ -c "$hidraw" ]; then
    (dd if="$hidraw" bs=8 count=1 2>/dev/null | xxd -p >/tmp/hid.out) &
    reader=$!
    usleep 300000
    printf '\000\000\004\000\000\000\000\000' >"$(gadget_hidg kbd)"
    wait "$reader"
    check "HID report 'a' pressed arrives" [ "$(cat /tmp/hid.out)" = 0000040000000000 ]
fi

# ACM: bytes written to the gadget's ttyGS arrive on the host's ttyACM.
gadget_wait_for 10 gadget_host_node ser tty >/dev/null || :
acm=$(gadget_host_node ser tty) || :
check "ser has a ttyACM node" [ -c "$acm" ]
if [ -c "$acm" ]; then
    stty -F "$acm" raw -echo
    stty -F "$(gadget_acm_tty ser)" raw -echo
    (head -c 5 "$acm" >/tmp/acm.out) &
    reader=$!
    usleep 300000
    printf hello >"$(gadget_acm_tty ser)"
    wait "$reader"
    check "ACM bytes arrive" [ "$(cat /tmp/acm.out)" = hello ]
fi

# Unplugging one gadget leaves the others alone.
gadget_unplug ser
check "ser gone" [ ! -e /sys/bus/usb/devices/3-1 ]
check "others stay" test -e /sys/bus/usb/devices/1-1 -a -e /sys/bus/usb/devices/2-1 \
    -a -e /sys/bus/usb/devices/4-1
gadget_replug ser
check "ser back" [ -e /sys/bus/usb/devices/3-1/idVendor ]

for g in disk kbd ser combo; do gadget_remove "$g"; done
check "configfs empty after remove" [ -z "$(ls /sys/kernel/config/usb_gadget)" ]
check "host sees no gadget" test ! -e /sys/bus/usb/devices/1-1 -a ! -e /sys/bus/usb/devices/2-1 \
    -a ! -e /sys/bus/usb/devices/3-1 -a ! -e /sys/bus/usb/devices/4-1

# USB/IP loopback: export 1-1 with usbip-host, import it on a vhci bus.
modprobe usbip-host
modprobe vhci-hcd
gadget_sourcesink 16384
usbipd -D
gadget_wait_for 10 sh -c 'netstat -ltn | grep -q ":3240 "'
usbip bind -b 1-1 >/dev/null 2>&1
usbip attach -r 127.0.0.1 -b 1-1 >/dev/null 2>&1
vhci_dev() {
    for d in /sys/bus/usb/devices/*-1; do
        case $d in */1-1) continue ;; esac
        [ "$(cat "$d/idProduct" 2>/dev/null)" = 0104 ] && echo "$d" && return 0
    done
    return 1
}
check "device imported on a vhci bus" gadget_wait_for 10 vhci_dev >/dev/null
if command -v usbprobe >/dev/null; then
    # The original 1-1 belongs to usbip-host, so libusb can only use the vhci copy.
    check "libusb bulk IN through USB/IP" sh -c 'usbprobe read 1d6b:0104 1048576 16384 >/dev/null'
fi
usbip detach -p "$(usbip port | sed -n 's/^Port \([0-9]*\):.*/\1/p' | head -n 1)" >/dev/null 2>&1
check "vhci copy gone after detach" gadget_wait_for 10 sh -c '! ls /sys/bus/usb/devices/*-1/idProduct | grep -qv "^/sys/bus/usb/devices/1-1/"'
usbip unbind -b 1-1 >/dev/null 2>&1
killall usbipd
gadget_remove g1

check_summary gadgets
