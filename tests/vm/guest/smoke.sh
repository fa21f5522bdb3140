#!/bin/sh
# Smoke test for the gadget VM (runs inside the guest, busybox ash):
# a SourceSink gadget enumerates at 1-1 with a usbfs node, disappears on unplug and comes
# back on replug. If the host passed usbprobe (tests/vm/tools/usbprobe.c, via --bin), it
# also reads/writes the gadget through libusb and checks libusb hot-plug events (which
# need the systemd-udevd that /init starts).
#   tests/vm/gadget-vm.sh --run tests/vm/guest/smoke.sh [--bin /path/to/usbprobe]
set -eu
# shellcheck source=tests/vm/gadget-initramfs/gadget.sh
. /lib/gadget.sh


gadget_sourcesink bulk_buflen=4096

check "gadget is at port 1-1" [ "$(gadget_port g1)" = 1-1 ]
check "/sys/bus/usb/devices/1-1/idVendor exists" [ -e /sys/bus/usb/devices/1-1/idVendor ]
check "idVendor is 1d6b" [ "$(cat /sys/bus/usb/devices/1-1/idVendor)" = 1d6b ]
check "idProduct is 0104" [ "$(cat /sys/bus/usb/devices/1-1/idProduct)" = 0104 ]
check "high-speed device" [ "$(cat /sys/bus/usb/devices/1-1/speed)" = 480 ]
check "/dev/bus/usb/001/002 exists" [ -c /dev/bus/usb/001/002 ]

gadget_unplug g1
check "1-1 gone after unplug" [ ! -e /sys/bus/usb/devices/1-1 ]
check "/dev/bus/usb/001/002 gone after unplug" [ ! -e /dev/bus/usb/001/002 ]

gadget_replug g1
check "1-1 back after replug" [ -e /sys/bus/usb/devices/1-1/idVendor ]
# A replugged device gets the next address.
check "/dev/bus/usb/001/003 after replug" [ -c /dev/bus/usb/001/003 ]
check "gadget_devnode follows" [ "$(gadget_devnode g1)" = /dev/bus/usb/001/003 ]

if command -v usbprobe >/dev/null; then
    check "libusb lists 1d6b:0104" sh -c 'usbprobe list | grep -q " 1d6b:0104 "'
    # (Quiet on success: the throughput they print is no test result.)
    check "libusb bulk IN, pattern checked" sh -c 'usbprobe read 1d6b:0104 1048576 4096 >/dev/null'
    check "libusb bulk OUT" sh -c 'usbprobe write 1d6b:0104 1048576 4096 >/dev/null'

    # Hot-plug: usbprobe arms its callback, then we unplug and replug.
    : >/tmp/hotplug.log
    usbprobe hotplug 1d6b:0104 2 20 >/tmp/hotplug.log 2>&1 &
    hp=$!
    gadget_wait_for 10 grep -q armed /tmp/hotplug.log
    gadget_unplug g1
    gadget_replug g1
    hp_rc=0
    wait "$hp" || hp_rc=$?
    check "libusb hot-plug saw left + arrived" [ "$hp_rc" -eq 0 ]
    check "hot-plug: left" grep -q '^left bus 001 dev 003' /tmp/hotplug.log
    check "hot-plug: arrived" grep -q '^arrived bus 001 dev 004' /tmp/hotplug.log
    [ "$hp_rc" -eq 0 ] || cat /tmp/hotplug.log
fi

gadget_remove g1
check "gadget removed" [ ! -e /sys/kernel/config/usb_gadget/g1 ]

check_summary smoke
