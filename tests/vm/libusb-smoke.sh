#!/bin/sh
# Guest side (busybox ash) of the libusb back-end's quick check: a SourceSink
# gadget at 1-1 assigned to a pvusb controller and enumerated by a frontend.
#   tests/vm/gadget-vm.sh --bin build-L/src/daemon/pvusbd --bin build-L/src/cli/pvusb \
#       --bin build-L/src/front/pvusb-lsusb --run tests/vm/libusb-smoke.sh
set -u
. /lib/gadget.sh
export PVUSB_SOCKET=/tmp/pvusbd.sock

gadget_sourcesink bulk_buflen=4096
pvusbd -s "$PVUSB_SOCKET" --no-state >/tmp/pvusbd.log 2>&1 &
gadget_wait_for 5 test -S "$PVUSB_SOCKET"
pvusb usbctrl-attach g version=2 ports=4
check "usbdev-attach 1-1" pvusb usbdev-attach g 1-1 controller=0 port=1
pvusb usb-list
pvusb-lsusb -v g
check "frontend enumerates it" pvusb-lsusb g
check "usbdev-detach" pvusb usbdev-detach g 0 1
cat /tmp/pvusbd.log
check_summary libusb-smoke
