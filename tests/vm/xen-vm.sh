#!/bin/bash
# xen-vm.sh: boot real Xen 4.17 (Debian 12 packages) inside QEMU/TCG with a Debian 12
# dom0 kept entirely in an initramfs, run a caller's script in dom0, print the serial
# console, and exit with that script's exit code.
#
#   xen-vm.sh [--file SRC:DST]... [--domu-file SRC:DST]... [--dom0-pkgs "PKG..."]
#             --run DOM0_SCRIPT [--timeout S]
#   xen-vm.sh [--dom0-pkgs "PKG..."] --setup-only
#
# The dom0 script runs as `bash /root/test.sh` in /root and can `. /lib/xen-test.sh` for
# start_domu / wait_domu_log / domu_log (see xen-test-lib.sh). --file puts a host file or
# directory into dom0 at DST (e.g. --file build/src/pvusbd:/usr/local/bin/pvusbd);
# --domu-file puts one into every domU ramdisk (a file at /domu.sh there is run by the
# domU's /init after xen-hcd is loaded). dom0 has oxenstored, xenconsoled, udevd running,
# configfs mounted, and the USB modules (dummy_hcd, gadget functions, usbip, usbmon) ready
# for modprobe. --timeout (default 600) counts from QEMU's start; dom0 stops the script
# ~15 s before it so that the domU logs are still printed.
# --dom0-pkgs adds Debian packages to dom0 (e.g. qemu-system-xen) for this run: they are
# installed once into a copy of the cached root and the files they add or change are
# cached as a separate cpio per package set, appended to this run's initrd; runs without
# the option boot exactly the base dom0.
#
# Exit status: the dom0 script's own, or 124 timeout, 125 Xen/dom0 crash or dom0 setup
# error, 126 VM stopped without a result, 2 usage error, 1 host setup error.
#
# The recipe and its pitfalls are in /work/shared/testbeds.md section 2. Everything heavy
# (downloads, debootstrap, kernel module build, the ~230 MB dom0 cpio) is built once into
# $PVUSB_XEN_CACHE and reused; a run only packs the caller's files into a small cpio that
# is appended to the cached one (the dom0 kernel unpacks concatenated cpio archives; Xen
# hands dom0 only ONE initrd module, so a second multiboot module would be ignored).
#
# Environment knobs: PVUSB_XEN_CACHE (default /var/cache/pvusb-xen), PVUSB_XEN_SMP (1),
# PVUSB_XEN_MEM (QEMU MiB, 3072), PVUSB_XEN_DOM0_MEM (1024M), PVUSB_XEN_DOM0_ARGS (extra
# dom0 kernel arguments, no commas), PVUSB_XEN_XEN_ARGS (extra Xen arguments),
# PVUSB_XEN_CPU (QEMU -cpu model, max), PVUSB_XEN_KEEP=1 keeps the per-run work directory (serial log) and prints its path.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=${PVUSB_XEN_CACHE:-/var/cache/pvusb-xen}
PROG=xen-vm

# Bump a step's version when its recipe changes so cached results are rebuilt.
V_DEBS=1 V_XEN=1 V_HCD=1 V_ROOT=2 V_DOM0MODS=3 V_DOMU=1 V_EXTRA=1

# dom0 userland. libusb/json-c/udev: the pvusb daemon's run-time libraries. cpio: the dom0
# helper library appends a per-domU script to the domU ramdisk. procps: ps/pkill for tests.
DOM0_PKGS="xen-utils-4.17 xenstore-utils libusb-1.0-0 libjson-c5 libudev1 kmod iproute2
cpio procps"
# Kernel modules put into dom0 (plus their dependencies): the xen device drivers for the
# toolstack, the USB stack with usbmon, dummy_hcd (gadget/udc) and the configfs gadget
# functions for test devices, USB/IP for comparisons, usb-storage/sd_mod for disk gadgets,
# loop for their backing files.
DOM0_MODS="kernel/drivers/xen kernel/fs/configfs kernel/drivers/usb/common
kernel/drivers/usb/core kernel/drivers/usb/mon kernel/drivers/usb/usbip
kernel/drivers/usb/storage kernel/drivers/usb/class kernel/drivers/usb/misc
kernel/drivers/usb/gadget/libcomposite.ko kernel/drivers/usb/gadget/udc
kernel/drivers/usb/gadget/function/usb_f_ss_lb.ko
kernel/drivers/usb/gadget/function/usb_f_mass_storage.ko
kernel/drivers/usb/gadget/function/usb_f_hid.ko kernel/drivers/usb/gadget/function/usb_f_acm.ko
kernel/drivers/usb/gadget/function/usb_f_serial.ko kernel/drivers/usb/gadget/function/usb_f_fs.ko
kernel/drivers/scsi/sd_mod.ko kernel/drivers/scsi/sg.ko kernel/drivers/block/loop.ko
kernel/drivers/hid/hid.ko kernel/drivers/hid/usbhid kernel/drivers/firmware/qemu_fw_cfg.ko"
# Kernel modules for the domU ramdisk: the USB core (xen-hcd's dependencies) and the class
# drivers a test may want to see a passed-through device bind to.
DOMU_MODS="kernel/drivers/usb/common kernel/drivers/usb/core kernel/drivers/usb/storage
kernel/drivers/usb/class kernel/drivers/usb/misc/usbtest.ko kernel/drivers/scsi/sd_mod.ko
kernel/drivers/scsi/sg.ko kernel/drivers/hid/hid.ko kernel/drivers/hid/hid-generic.ko
kernel/drivers/hid/usbhid"

die() { echo "$PROG: $*" >&2; exit 1; }
usage() {
    # The header comment up to its "Exit status" paragraph.
    sed -n '2,/^# error, 126/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# ---------------------------------------------------------------- arguments
FILES=() DOMU_FILES=() SCRIPT="" TIMEOUT=600 SETUP_ONLY=0 EXTRA_PKGS="" EXTRA_CPIO=""
while [ $# -gt 0 ]; do
    case $1 in
        --file) [ $# -ge 2 ] || usage; FILES+=("$2"); shift 2 ;;
        --domu-file) [ $# -ge 2 ] || usage; DOMU_FILES+=("$2"); shift 2 ;;
        --dom0-pkgs) [ $# -ge 2 ] || usage; EXTRA_PKGS+=" $2"; shift 2 ;;
        --run) [ $# -ge 2 ] || usage; SCRIPT=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
        --setup-only) SETUP_ONLY=1; shift ;;
        -h|--help) usage ;;
        *) echo "$PROG: unknown argument '$1'" >&2; usage ;;
    esac
done
[ "$SETUP_ONLY" = 1 ] || [ -n "$SCRIPT" ] || { echo "$PROG: --run DOM0_SCRIPT is required" >&2; usage; }
[ -z "$SCRIPT" ] || [ -f "$SCRIPT" ] || die "dom0 script '$SCRIPT' not found"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, got '$TIMEOUT'"
for spec in ${FILES[@]+"${FILES[@]}"} ${DOMU_FILES[@]+"${DOMU_FILES[@]}"}; do
    [[ $spec == *:/* ]] || die "file spec '$spec' must be SRC:/absolute/DST"
    [ -e "${spec%%:*}" ] || die "file '${spec%%:*}' (from '$spec') not found"
done
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mknod)"
# QEMU's -initrd takes a comma-separated module list: a comma in a path would split it.
[[ $C != *,* ]] || die "PVUSB_XEN_CACHE must not contain a comma"
# One sorted, de-duplicated list: it names the cached package cpio.
EXTRA_PKGS=$(printf '%s\n' $EXTRA_PKGS | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/ $//')
for p in $EXTRA_PKGS; do
    [[ $p =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || die "--dom0-pkgs: '$p' is not a Debian package name"
done

# ---------------------------------------------------------------- cache helpers
mkdir -p "$C/stamps" "$C/logs"
stamp_ok() { [ -f "$C/stamps/$1" ] && [ "$(cat "$C/stamps/$1")" = "$2" ]; }
stamp_set() { printf '%s\n' "$2" >"$C/stamps/$1"; }

# Run one setup step quietly; on failure show the end of its log. The step runs in a
# background subshell because bash ignores `set -e` inside anything used as a condition
# (`if f`, `f || x`), which would let a failed command in a step go unnoticed.
step() {
    local name=$1; shift
    local log="$C/logs/$name.log"
    ( set -euo pipefail; "$@" ) >"$log" 2>&1 </dev/null &
    if ! wait $!; then
        echo "$PROG: setup step '$name' failed; end of $log:" >&2
        tail -n 25 "$log" >&2
        exit 1
    fi
}

# The first URI of a "deb" source for SUITE in the host's apt configuration (one-line and
# deb822 formats), so dom0 is built from the same mirror the host uses.
apt_uri() {
    local suite=$1 f
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            awk -v s="$suite" '$1 == "deb" { i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) print $i }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" } {
                t = ""; u = ""; su = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) t = $i " "
                    if ($i ~ /^URIs:/) u = $i
                    if ($i ~ /^Suites:/) su = $i " "
                }
                if (t ~ /[ \t]deb[ \t]/ && su ~ ("[ \t]" s "[ \t]")) {
                    sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1]
                } }' "$f"
        done
    } | awk 'NR == 1'
}

# ---------------------------------------------------------------- setup steps
host_packages() {
    # Tools this script runs on the host; installed only when missing.
    local need=() p
    for p in qemu-system-x86 debootstrap cpio gcc make kmod xz-utils; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; }
}

kernel_abi() {
    # The ABI of the newest kernel on the mirror; old ABIs vanish when a new one ships,
    # so it is looked up at run time (once per setup).
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n 1
}

download_debs() {
    rm -rf "$C/debs.tmp"; mkdir -p "$C/debs.tmp"; cd "$C/debs.tmp"
    # Sandbox user root: _apt cannot write into a root-owned cache directory.
    apt-get -q -o APT::Sandbox::User=root download "${DEBS[@]}" ||
        { apt-get update -q && apt-get -q -o APT::Sandbox::User=root download "${DEBS[@]}"; }
    cd "$C"; rm -rf "$C/debs"; mv "$C/debs.tmp" "$C/debs"
}
deb_of() { local f; f=$(ls "$C/debs/$1"_*.deb 2>/dev/null | head -n 1); [ -n "$f" ] || die "no .deb for $1"; echo "$f"; }

unpack_kernel() {
    rm -rf "$C/kernel"; dpkg -x "$(deb_of "linux-image-$ABI")" "$C/kernel"
    test -f "$C/kernel/boot/vmlinuz-$ABI"
}

unpack_xen() {
    local t; t=$(mktemp -d)
    dpkg -x "$(deb_of xen-hypervisor-4.17-amd64)" "$t"
    # The .gz is a multiboot ELF that QEMU's -kernel boots once gunzipped.
    gunzip -c "$t/boot/xen-4.17-amd64.gz" >"$C/xen.elf.tmp"
    mv "$C/xen.elf.tmp" "$C/xen.elf"; rm -rf "$t"
}

build_xen_hcd() {
    local kh="$C/kheaders" kdir
    rm -rf "$kh" "$C/xen-hcd"; mkdir -p "$kh" "$C/xen-hcd"
    dpkg -x "$(deb_of "linux-headers-$ABI")" "$kh"
    dpkg -x "$(deb_of "linux-headers-${ABI%-amd64}-common")" "$kh"
    dpkg -x "$(deb_of "linux-kbuild-$KVER")" "$kh"
    kdir="$kh/usr/src/linux-headers-$ABI"
    # The arch Makefile includes the -common tree by its absolute /usr/src path; point it
    # at the unpacked copy (nothing is installed into the host's /usr/src).
    sed -i "s|^include /usr/src/|include $kh/usr/src/|" "$kdir/Makefile"
    # Only xen-hcd.c is needed from the 140 MB source tarball; stop at the first match
    # (reading from a file: an early stop in the middle of a pipe would be a SIGPIPE).
    dpkg-deb --fsys-tarfile "$(deb_of "linux-source-$KVER")" |
        tar -xO "./usr/src/linux-source-$KVER.tar.xz" >"$C/xen-hcd/src.tar.xz"
    tar -xJ --occurrence=1 -O -f "$C/xen-hcd/src.tar.xz" \
        "linux-source-$KVER/drivers/usb/host/xen-hcd.c" >"$C/xen-hcd/xen-hcd.c"
    rm -f "$C/xen-hcd/src.tar.xz"
    test -s "$C/xen-hcd/xen-hcd.c"
    echo 'obj-m := xen-hcd.o' >"$C/xen-hcd/Kbuild"
    make -C "$kdir" M="$C/xen-hcd" -j2 modules
    modinfo -F vermagic "$C/xen-hcd/xen-hcd.ko" | grep -q "^$ABI "
}

# copy_modules SRC_MODDIR DST_MODDIR ITEM... : copy the listed module files/directories
# (relative to SRC_MODDIR) plus everything they depend on (modinfo's "depends"), and the
# files depmod needs; the caller then runs depmod so that modprobe works.
copy_modules() {
    local src=$1 dst=$2 name dep f; shift 2
    local -A path_of=() done_=()
    local queue=()
    while IFS= read -r f; do
        name=$(basename "$f" .ko); path_of[${name//-/_}]=$f
    done < <(cd "$src" && find kernel -name '*.ko')
    for dep in "$@"; do
        while IFS= read -r f; do queue+=("$f"); done < <(cd "$src" && find "$dep" -name '*.ko')
    done
    while [ ${#queue[@]} -gt 0 ]; do
        f=${queue[0]}; queue=("${queue[@]:1}")
        [ -z "${done_[$f]:-}" ] || continue
        done_[$f]=1
        install -D -m 644 "$src/$f" "$dst/$f"
        for dep in $(modinfo -F depends "$src/$f" | tr ',' ' '); do
            queue+=("${path_of[${dep//-/_}]:?module $dep (needed by $f) not found}")
        done
    done
    cp "$src"/modules.builtin "$src"/modules.builtin.modinfo "$src"/modules.order "$dst/"
}
depmod_tree() { # ROOT: depmod for the tree ROOT/lib/modules/$ABI
    depmod -b "$1" "$ABI"
}

build_rootfs() {
    local r="$C/rootfs.tmp" m
    for m in proc sys dev/pts dev; do umount "$r/$m" 2>/dev/null || true; done
    rm -rf "$r"
    debootstrap --variant=minbase bookworm "$r" "$MIRROR"
    # Security updates matter here: the hypervisor comes from bookworm-security and the
    # tools should be the same 4.17 build.
    cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECMIRROR bookworm-security main
EOF
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    # No service may start inside the chroot on the build host.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 755 "$r/usr/sbin/policy-rc.d"
    mount -t proc proc "$r/proc"
    trap 'umount "'"$r"'/proc" 2>/dev/null || true' EXIT
    chroot "$r" apt-get update -q
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -q --no-install-recommends $DOM0_PKGS
    chroot "$r" apt-get clean
    umount "$r/proc"; trap - EXIT
    rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
    # Shrink the cpio: QEMU copies it and the dom0 kernel unpacks it under TCG on every boot.
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log \
        "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/info "$r"/usr/share/locale \
        "$r"/usr/lib/udev/hwdb.d/*.hwdb "$r"/usr/lib/xen-4.17/boot/xen-shim
    # (hwdb.d holds only the sources of hwdb.bin; xen-shim is for PV-in-PVH guests.)
    # Logs xenconsoled and xl write; xl keeps its lock and domain config state here.
    mkdir -p "$r/var/log/xen/console" "$r/var/lib/xen" "$r/etc/xen-test" "$r/var/lib/xen-test"
    test -c "$r/dev/console" || mknod -m 600 "$r/dev/console" c 5 1
    rm -rf "$C/rootfs"; mv "$r" "$C/rootfs"
    # Uncompressed on purpose: decompressing ~160 MB under TCG costs more than copying it.
    (cd "$C/rootfs" && find . -mindepth 1 -path ./proc/\* -prune -o -path ./sys/\* -prune -o -print |
        LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$C/dom0-root.cpio.tmp"
    mv "$C/dom0-root.cpio.tmp" "$C/dom0-root.cpio"
}

build_domu_base() {
    local st="$C/domu-base" d
    rm -rf "$st"; mkdir -p "$st"
    for d in bin sbin usr/bin usr/sbin proc sys dev tmp run root etc; do mkdir -p "$st/$d"; done
    dpkg-deb --fsys-tarfile "$(deb_of busybox-static)" | tar -xO ./bin/busybox >"$st/bin/busybox"
    chmod 755 "$st/bin/busybox"; ln -s busybox "$st/bin/sh"
    # The kernel opens /dev/console for init's stdio before /init can mount devtmpfs.
    mknod -m 600 "$st/dev/console" c 5 1
    copy_modules "$C/kernel/lib/modules/$ABI" "$st/lib/modules/$ABI" $DOMU_MODS
    install -D -m 644 "$C/xen-hcd/xen-hcd.ko" "$st/lib/modules/$ABI/extra/xen-hcd.ko"
    depmod_tree "$st"
    (cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$C/domu-base.cpio.tmp"
    mv "$C/domu-base.cpio.tmp" "$C/domu-base.cpio"
}

build_dom0_mods() {
    # Second cpio of the dom0 base: everything that depends on the kernel ABI, so a new
    # kernel on the mirror does not force a new debootstrap.
    local st="$C/dom0-mods"
    rm -rf "$st"; mkdir -p "$st/usr/lib/modules" "$st/var/lib/xen-test"
    copy_modules "$C/kernel/lib/modules/$ABI" "$st/usr/lib/modules/$ABI" $DOM0_MODS
    depmod -b "$st/usr" "$ABI"
    # The domU kernel and ramdisk base, used by start_domu in dom0. The kernel goes in
    # uncompressed: libxl would otherwise unpack the xz bzImage in dom0 under TCG on
    # every xl create (measured: xl create to "xen-hcd loaded" 17.7 s -> 9.4 s). If the
    # payload is not xz, the bzImage itself is used.
    local off
    # (No pipes into early-stopping readers here: their SIGPIPE would fail the step.)
    off=$(LC_ALL=C grep -m 1 -obUaP '\xfd7zXZ\x00' "$C/kernel/boot/vmlinuz-$ABI" || true)
    off=${off%%:*}
    if [ -n "$off" ] &&
            xz -dc --single-stream <(tail -c +$((off + 1)) "$C/kernel/boot/vmlinuz-$ABI") \
                >"$st/var/lib/xen-test/vmlinux" 2>/dev/null &&
            [ "$(head -c 4 "$st/var/lib/xen-test/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        :
    else
        rm -f "$st/var/lib/xen-test/vmlinux"
        cp "$C/kernel/boot/vmlinuz-$ABI" "$st/var/lib/xen-test/vmlinuz"
    fi
    cp "$C/domu-base.cpio" "$st/var/lib/xen-test/domu-base.cpio"
    # Directory entries must carry the modes they have in the base, or unpacking this
    # archive over it would change them.
    (cd "$st" && find . -mindepth 1 -type d | while IFS= read -r d; do
        if [ -e "$C/rootfs/$d" ]; then chmod --reference="$C/rootfs/$d" "$d"; fi; done)
    (cd "$st" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$C/dom0-mods.cpio.tmp"
    mv "$C/dom0-mods.cpio.tmp" "$C/dom0-mods.cpio"
}

# Extra dom0 packages (--dom0-pkgs): installed into a copy of the cached root; the files
# that differ from the root become a cpio that is unpacked over it at boot. Files the
# packages would remove cannot be expressed that way: the step fails if there are any.
build_dom0_extra() { # NAME PKG...
    local name=$1 r="$C/$1.root" list="$C/$1.list" l rel
    shift
    umount "$r/proc" 2>/dev/null || true
    rm -rf "$r"
    cp -a "$C/rootfs" "$r"
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 755 "$r/usr/sbin/policy-rc.d"
    mount -t proc proc "$r/proc"
    trap 'umount "'"$r"'/proc" 2>/dev/null || true' EXIT
    chroot "$r" apt-get update -q
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -q --no-install-recommends "$@"
    chroot "$r" apt-get clean
    umount "$r/proc"; trap - EXIT
    rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
    # The same trimming as the base root (build_rootfs).
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log \
        "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/info "$r"/usr/share/locale \
        "$r"/usr/lib/udev/hwdb.d/*.hwdb "$r"/usr/lib/xen-4.17/boot/xen-shim
    # diff exits 1 when the trees differ, 2 on trouble.
    local rc=0
    diff -rq --no-dereference "$C/rootfs" "$r" >"$C/$name.diff" || rc=$?
    [ "$rc" -le 1 ] || { cat "$C/$name.diff"; return 1; }
    : >"$list"
    while IFS= read -r l; do
        case $l in
            "Only in $r"*)
                rel=${l#"Only in $r"}; rel=${rel/: //}; rel=${rel#/}
                (cd "$r" && find "./$rel") >>"$list" ;;
            "Only in $C/rootfs"*)
                echo "package install removed ${l#Only in }: not expressible as an overlay" >&2
                return 1 ;;
            "Files $C/rootfs/"*" differ"|"Symbolic links $C/rootfs/"*" differ")
                rel=${l%" differ"}; rel=${rel##*" and $r/"}; echo "./$rel" >>"$list" ;;
            "File $C/rootfs/"*" character special file while file $r/"*" character special file"|\
            "File $C/rootfs/"*" block special file while file $r/"*" block special file")
                ;; # device nodes copied by cp -a (diff does not compare them)
            "File $C/rootfs/"*" while file $r/"*)
                rel=${l##*" while file $r/"}; rel=${rel% is a *}; echo "./$rel" >>"$list" ;;
            *) echo "unexpected diff line: $l" >&2; return 1 ;;
        esac
    done <"$C/$name.diff"
    (cd "$r" && LC_ALL=C sort -u "$list" | cpio -o -H newc -R 0:0 --quiet) >"$C/$name.cpio.tmp"
    mv "$C/$name.cpio.tmp" "$C/$name.cpio"
    echo "$(wc -l <"$list") entries, $(stat -c %s "$C/$name.cpio") bytes"
    rm -rf "$r"
}

setup() {
    # One setup at a time; runs share the finished cache.
    exec 8>"$C/setup.lock"; flock 8
    step host-packages host_packages
    ABI=$(kernel_abi || true)
    if [ -z "$ABI" ]; then apt-get update -q >/dev/null 2>&1 || true; ABI=$(kernel_abi || true); fi
    [ -n "$ABI" ] || die "cannot find the kernel ABI (apt-cache depends linux-image-amd64)"
    KVER=$(echo "$ABI" | cut -d. -f1,2)
    MIRROR=$(apt_uri bookworm); MIRROR=${MIRROR:-http://deb.debian.org/debian}
    SECMIRROR=$(apt_uri bookworm-security); SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}
    # The hypervisor's version keys the downloads and the dom0 root, so the toolstack in
    # dom0 always comes from the same 4.17 release as the hypervisor.
    XENVER=$(apt-cache policy xen-hypervisor-4.17-amd64 2>/dev/null | awk '/Candidate:/ { print $2 }' || true)
    [ -n "$XENVER" ] && [ "$XENVER" != "(none)" ] || die "xen-hypervisor-4.17-amd64 is not known to apt"
    DEBS=("linux-image-$ABI" "linux-headers-$ABI" "linux-headers-${ABI%-amd64}-common"
        "linux-kbuild-$KVER" "linux-source-$KVER" xen-hypervisor-4.17-amd64 busybox-static)

    stamp_ok debs "$V_DEBS $ABI $XENVER" || { step download download_debs; stamp_set debs "$V_DEBS $ABI $XENVER"; }
    stamp_ok kernel "$V_DEBS $ABI" || { step kernel unpack_kernel; stamp_set kernel "$V_DEBS $ABI"; }
    stamp_ok xen "$V_XEN $XENVER" || { step xen unpack_xen; stamp_set xen "$V_XEN $XENVER"; }
    stamp_ok xen-hcd "$V_HCD $ABI" || { step xen-hcd build_xen_hcd; stamp_set xen-hcd "$V_HCD $ABI"; }
    local rkey="$V_ROOT $XENVER $MIRROR $SECMIRROR $(echo $DOM0_PKGS)"
    stamp_ok rootfs "$rkey" || { step rootfs build_rootfs; stamp_set rootfs "$rkey"; }
    local dkey="$V_DOMU $ABI $(echo $DOMU_MODS)"
    stamp_ok domu-base "$dkey" || { step domu-base build_domu_base; stamp_set domu-base "$dkey"
        rm -f "$C/stamps/dom0-mods"; }
    local mkey="$V_DOM0MODS $ABI $(echo $DOM0_MODS) $rkey"
    stamp_ok dom0-mods "$mkey" || { step dom0-mods build_dom0_mods; stamp_set dom0-mods "$mkey"; }
    VMLINUZ="$C/kernel/boot/vmlinuz-$ABI"
    exec 8>&-
    if [ -n "$EXTRA_PKGS" ]; then
        # Its own lock: a long package install must not hold up other runs' setup.
        local xname xkey
        xname="dom0-extra-$(printf '%s' "$EXTRA_PKGS" | md5sum | cut -c1-12)"
        xkey="$V_EXTRA $rkey $EXTRA_PKGS"
        exec 7>"$C/extra.lock"; flock 7
        stamp_ok "$xname" "$xkey" && [ -f "$C/$xname.cpio" ] ||
            { step "$xname" build_dom0_extra "$xname" $EXTRA_PKGS; stamp_set "$xname" "$xkey"; }
        exec 7>&-
        EXTRA_CPIO="$C/$xname.cpio"
    fi
}

# ---------------------------------------------------------------- per-run overlay
# Host paths under /bin, /sbin, /lib go to /usr (dom0 has a merged /usr), so the overlay
# never replaces a top-level symlink with a directory.
dom0_path() {
    case $1 in
        /bin/*|/sbin/*|/lib/*|/lib64/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}
stage() { # SRC DST_ROOT DST_PATH
    mkdir -p "$2$(dirname "$3")"
    cp -a --no-preserve=ownership "$1" "$2$3"
}
pack() { # DIR OUT [REFERENCE_ROOT]: newc cpio of DIR's contents
    local dir=$1 out=$2 ref=${3:-}
    if [ -n "$ref" ]; then
        (cd "$dir" && find . -mindepth 1 -type d | while IFS= read -r d; do
            if [ -e "$ref/$d" ]; then chmod --reference="$ref/$d" "$d"; fi; done)
    fi
    (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
}

build_overlay() {
    local ov="$W/overlay" dov="$W/domu-overlay" spec src dst
    mkdir -p "$ov" "$dov"
    # domU side: its /init and the caller's --domu-file files, as one small cpio that
    # start_domu appends to domu-base.cpio.
    stage "$HERE/xen-domu-init.sh" "$dov" /init; chmod 755 "$dov/init"
    for spec in ${DOMU_FILES[@]+"${DOMU_FILES[@]}"}; do
        src=${spec%%:*}; dst=${spec#*:}; stage "$src" "$dov" "$dst"
    done
    pack "$dov" "$W/domu-run.cpio"
    # dom0 side: /init, the helper library, the script, the caller's files.
    stage "$HERE/xen-dom0-init.sh" "$ov" /init; chmod 755 "$ov/init"
    stage "$HERE/xen-test-lib.sh" "$ov" /usr/lib/xen-test.sh
    stage "$SCRIPT" "$ov" /root/test.sh; chmod 755 "$ov/root/test.sh"
    stage "$W/domu-run.cpio" "$ov" /var/lib/xen-test/domu-run.cpio
    printf 'XT_TIMEOUT=%s\n' "$TIMEOUT" >"$W/run.conf"
    stage "$W/run.conf" "$ov" /etc/xen-test/run.conf
    for spec in ${FILES[@]+"${FILES[@]}"}; do
        src=${spec%%:*}; dst=$(dom0_path "${spec#*:}"); stage "$src" "$ov" "$dst"
    done
    pack "$ov" "$W/overlay.cpio" "$C/rootfs"
    if [ -n "$EXTRA_CPIO" ]; then
        # The packages first, so that the caller's files win.
        cat "$EXTRA_CPIO" "$W/overlay.cpio" >"$W/overlay+pkgs.cpio"
        mv "$W/overlay+pkgs.cpio" "$W/overlay.cpio"
    fi
}

# The initrd QEMU loads is base (root + mods) + overlay. Rewriting ~220 MB per run is
# avoided by keeping one cached copy of the base and only truncating it back to the base
# size and appending the new overlay. The lock (fd 9, held until QEMU exits) keeps
# concurrent runs from sharing the file; a run that cannot get it builds a private copy.
prepare_initrd() {
    local base_id size
    base_id=$(stat -c '%s %Y %i' "$C/dom0-root.cpio" "$C/dom0-mods.cpio" | tr '\n' ' ')
    size=$(( $(stat -c %s "$C/dom0-root.cpio") + $(stat -c %s "$C/dom0-mods.cpio") ))
    exec 9>>"$C/run.cpio.lock"
    if flock -n 9; then
        INITRD="$C/run.cpio"
        if ! stamp_ok run-cpio "$base_id" || [ "$(stat -c %s "$INITRD" 2>/dev/null || echo 0)" -lt "$size" ]; then
            cat "$C/dom0-root.cpio" "$C/dom0-mods.cpio" >"$INITRD"
            stamp_set run-cpio "$base_id"
        fi
        truncate -s "$size" "$INITRD"
        cat "$W/overlay.cpio" >>"$INITRD"
    else
        exec 9>&-
        INITRD="$W/dom0.cpio"
        cat "$C/dom0-root.cpio" "$C/dom0-mods.cpio" "$W/overlay.cpio" >"$INITRD"
    fi
}

# ---------------------------------------------------------------- run
QPID="" TPID=""
cleanup() {
    [ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true
    [ -z "$TPID" ] || { sleep 0.3; kill "$TPID" 2>/dev/null || true; }
    if [ "${PVUSB_XEN_KEEP:-0}" = 1 ]; then echo "$PROG: kept $W" >&2; else rm -rf "$W"; fi
}

run_vm() {
    local log="$W/serial.log" start now state="" rc="" ready="" grace=0
    : >"$log"
    local xen_args="console=com1 com1=115200,8n1 dom0_mem=${PVUSB_XEN_DOM0_MEM:-1024M},max:${PVUSB_XEN_DOM0_MEM:-1024M}"
    # smap/smep=hvm: under TCG with -cpu max a PV dom0 otherwise dies at once (#PF in
    # create_bounce_frame). noreboot: a crash halts instead of looping through reboots.
    # spec-ctrl=eager-fpu: QEMU's max CPU says AMD, and on AMD Xen switches FPU/SSE state
    # lazily (CR0.TS, #NM on first use). Under QEMU 7.2's TCG that loses or mixes vCPUs'
    # SSE/AVX state: with lazy switching, processes in dom0 and the domUs died within
    # ~30-90 s of domUs running (malloc finding zeroed free-list pointers in bash, GPFs in
    # libc; also with AVX off), with no pvusb part involved. Eager switching: 0 crashes.
    xen_args+=" dom0_max_vcpus=${PVUSB_XEN_SMP:-1} smap=hvm smep=hvm spec-ctrl=eager-fpu noreboot ${PVUSB_XEN_XEN_ARGS:-}"
    local dom0_args="console=hvc0 rdinit=/init panic_on_oops=1 ${PVUSB_XEN_DOM0_ARGS:-}"
    [[ $dom0_args != *,* ]] || die "PVUSB_XEN_DOM0_ARGS must not contain a comma (QEMU module separator)"
    # One vCPU by default: measured here, a dom0 pipeline (`tr | grep`) took 0.86 s with
    # -smp 2 and 0.2 s with -smp 1 (cross-vCPU wake-ups are costly under TCG), a boot plus
    # smoke test 66 s against 53 s, and the host's 2 cores are shared with other work.
    # One grep in dom0 also died once of a GPF in libc with -smp 2 (never seen with 1).
    start=$(date +%s.%N)
    qemu-system-x86_64 -accel tcg,thread=multi -cpu "${PVUSB_XEN_CPU:-max}" -smp "${PVUSB_XEN_SMP:-1}" \
        -m "${PVUSB_XEN_MEM:-3072}" -machine q35 -display none -no-reboot -nic none \
        -serial "file:$log" -kernel "$C/xen.elf" -append "$xen_args" \
        -initrd "$VMLINUZ $dom0_args,$INITRD" </dev/null >"$W/qemu.out" 2>&1 &
    QPID=$!
    # Stream the console as it arrives (Xen sends CRLF).
    tail -n +1 -F --pid="$QPID" "$log" 2>/dev/null | tr -d '\r' &
    TPID=$!
    local deadline; deadline=$(awk -v a="$start" -v t="$TIMEOUT" 'BEGIN { printf "%.3f", a + t }')
    while :; do
        sleep 0.5
        now=$(date +%s.%N)
        if [ -z "$ready" ] && grep -aq '^PVUSB-VM-READY' "$log"; then
            ready=$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
        fi
        rc=$(sed -n 's/^PVUSB-VM-RESULT: rc=\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        if [ -n "$rc" ]; then state=result; break; fi
        if grep -aq '^PVUSB-VM-ERROR' "$log"; then state=error; fi
        # Xen's own lines start with "(XEN)"; dom0's console lines never do, so a test
        # that prints "panic" cannot trigger this.
        if grep -aqE '^\(XEN\) (Panic on CPU|Hardware Dom0 crashed|\*\*\* DOUBLE FAULT)' "$log"; then state=crash; fi
        if [ -n "$state" ]; then
            # Let the rest of the trace reach the log, then stop the (halted) machine.
            grace=$((grace + 1)); [ $grace -lt 6 ] || break
            continue
        fi
        kill -0 "$QPID" 2>/dev/null || { state=exited; break; }
        if awk -v a="$now" -v b="${deadline}" 'BEGIN { exit !(a > b) }'; then state=timeout; break; fi
    done
    if [ "$state" = result ]; then
        # dom0 powers the machine off after the result line; give it a moment.
        local i; for i in $(seq 40); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
    fi
    kill "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    QPID=""
    wait "$TPID" 2>/dev/null || true
    TPID=""
    local total; total=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    local t="dom0 ready after ${ready:-?} s, total ${total} s"
    case $state in
        result)
            if [ "$rc" = 124 ] && grep -aq '^PVUSB-VM: dom0 script killed after' "$log"; then
                echo "$PROG: dom0 script timed out (killed in dom0 to fit --timeout $TIMEOUT) ($t)" >&2
            else
                echo "$PROG: dom0 script exited with rc=$rc ($t)" >&2
            fi
            return "$rc" ;;
        error) echo "$PROG: dom0 setup failed: $(grep -a '^PVUSB-VM-ERROR' "$log" | head -n 1 | tr -d '\r') ($t)" >&2; return 125 ;;
        crash) echo "$PROG: Xen or dom0 crashed: $(grep -aE '^\(XEN\) (Panic on CPU|Hardware Dom0 crashed|\*\*\* DOUBLE FAULT)' "$log" | head -n 1 | tr -d '\r') ($t)" >&2; return 125 ;;
        timeout) echo "$PROG: timeout after $TIMEOUT s without a result line ($t)" >&2; return 124 ;;
        *) echo "$PROG: QEMU stopped without a result line ($t); QEMU said: $(tr '\n' ' ' <"$W/qemu.out")" >&2; return 126 ;;
    esac
}

setup
[ "$SETUP_ONLY" = 1 ] && exit 0
W=$(mktemp -d "${TMPDIR:-/tmp}/pvusb-xen.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
build_overlay
prepare_initrd
set +e
run_vm
rc=$?
set -e
exit $rc
