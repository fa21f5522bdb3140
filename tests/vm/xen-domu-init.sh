#!/bin/sh
# /init (PID 1) of the PV domU ramdisk made by xen-vm.sh (busybox + the USB modules +
# xen-hcd.ko). Loads xen-hcd, prints the result, runs /domu.sh if present, then idles:
# dom0 decides when the domain goes (xl destroy). Everything goes to hvc0, which dom0's
# xenconsoled writes to /var/log/xen/console/guest-<name>.log. Lines starting with
# PVUSB-DOMU are for the dom0 test scripts to wait for.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /sys/kernel/debug
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# debugfs: /sys/kernel/debug/usb/devices lists every device xen-hcd enumerated.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo "PVUSB-DOMU: booted, uptime $(cut -d' ' -f1 /proc/uptime) s"

# modprobe resolves usb-common -> usbcore -> xen-hcd from modules.dep.
if modprobe xen-hcd; then
    echo "PVUSB-DOMU: xen-hcd loaded, uptime $(cut -d' ' -f1 /proc/uptime) s"
else
    echo "PVUSB-DOMU: xen-hcd FAILED to load"
fi
echo "PVUSB-DOMU: lsmod:"
lsmod

rc=0
if [ -f /domu.sh ]; then
    sh /domu.sh
    rc=$?
    echo "PVUSB-DOMU-RESULT: rc=$rc"
fi
echo "PVUSB-DOMU: idle"
while :; do sleep 3600; done
