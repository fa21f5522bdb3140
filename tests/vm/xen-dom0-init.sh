#!/bin/bash
# /init (PID 1) of the test dom0 built by xen-vm.sh. Brings up just enough of a Debian
# dom0 for the Xen toolstack (no init system: the whole root is an initramfs), runs
# /root/test.sh, dumps the domU console logs, prints
#   PVUSB-VM-RESULT: rc=<n>
# which the host waits for, and powers the machine off. Lines starting with PVUSB-VM- are
# the protocol with xen-vm.sh. PID 1 must never exit (the kernel would panic), so there is
# no `set -e` here: every failure is reported and ends in the power-off path.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

fail() {
    echo "PVUSB-VM-ERROR: $*"
    poweroff_now
}
poweroff_now() {
    sync
    # No init system, so no poweroff(8): sysrq 'o' is the kernel's power-off, which under
    # Xen asks the hypervisor to shut the machine down (QEMU then exits).
    echo o >/proc/sysrq-trigger
    sleep 60
    echo "PVUSB-VM-ERROR: power-off did not happen"
    while :; do sleep 3600; done
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/xen /run/xenstored
chmod 1777 /tmp
# The initramfs root is a tmpfs, whose root directory defaults to mode 1777.
chmod 755 /
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname dom0
echo 'dom0' >/etc/hostname
ip link set lo up 2>/dev/null

[ -r /etc/xen-test/run.conf ] && . /etc/xen-test/run.conf
XT_TIMEOUT=${XT_TIMEOUT:-600}

# Xen device drivers the toolstack talks through (/dev/xen/*, /proc/xen), and configfs
# for USB gadgets.
modprobe -a xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc configfs ||
    fail "modprobe of the xen modules failed"
mount -t xenfs xenfs /proc/xen || fail "cannot mount xenfs on /proc/xen"
mount -t configfs configfs /sys/kernel/config 2>/dev/null
grep -q control_d /proc/xen/capabilities || fail "not running as Xen dom0 (/proc/xen/capabilities)"

# udevd feeds the "udev" netlink group that libusb's hot-plug listens to (testbeds.md 1);
# without it libusb never reports an unplug or replug.
if [ -x /lib/systemd/systemd-udevd ]; then
    /lib/systemd/systemd-udevd --daemon --resolve-names=never 2>/dev/null ||
        echo "PVUSB-VM: warning: systemd-udevd did not start"
fi

# oxenstored + xenconsoled. Console logs to files: `xl console` needs a tty, files can be
# read by tests and dumped at the end.
mkdir -p /var/log/xen/console
export XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"
/etc/init.d/xen start >/tmp/xen-start.log 2>&1 || { cat /tmp/xen-start.log; fail "/etc/init.d/xen start failed"; }
xl list >/tmp/xl-list.log 2>&1 || { cat /tmp/xen-start.log /tmp/xl-list.log; fail "xl list failed"; }
echo "PVUSB-VM-READY: xl list works, dom0 uptime $(uptime_s) s"

# The host gives up XT_TIMEOUT seconds after QEMU started; stop the script early enough
# to still dump the domU logs and report (boot before dom0's clock started: ~5 s).
budget=$(( XT_TIMEOUT - ${XT_BOOT_SLACK:-5} - $(uptime_s | cut -d. -f1) - 15 ))
[ "$budget" -gt 10 ] || budget=10
cd /root
timeout -k 5 "$budget" bash /root/test.sh </dev/null
rc=$?
[ "$rc" -ne 124 ] || echo "PVUSB-VM: dom0 script killed after $budget s (timeout)"

# domU consoles, one prefixed line each so they cannot be taken for dom0 output.
for f in /var/log/xen/console/guest-*.log; do
    [ -f "$f" ] || continue
    name=${f##*/guest-}; name=${name%.log}
    echo "===== domU console: $name ====="
    tr -d '\r' <"$f" | sed "s/^/[domU $name] /"
done
if [ "$rc" -ne 0 ]; then
    for f in /var/log/xen/xl-*.log; do
        [ -f "$f" ] || continue
        echo "===== toolstack log: ${f##*/} ====="
        sed 's/^/[xl] /' "$f"
    done
fi
echo "PVUSB-VM-RESULT: rc=$rc"
poweroff_now
