#!/usr/bin/env bash
# gadget-vm.sh - boot a throw-away QEMU guest whose USB stack sees real (emulated) USB
# devices, made with configfs gadgets on dummy_hcd, and run one test script inside it.
#
#   gadget-vm.sh [--bin PATH]... [--file SRC:DST]... [--udcs N] [--super-speed]
#                [--usb-audio] [--mem MB] [--timeout SECONDS] [--keep] [-v]
#                --run GUEST_SCRIPT [-- ARGS...]
#   gadget-vm.sh --setup-only
#
#   --bin PATH        host program -> guest /usr/local/bin, with the libraries ldd lists
#   --file SRC:/DST   file or directory copied into the guest
#   --run SCRIPT      run as /test/<name> (busybox sh) with ARGS; its output is streamed
#   --udcs N          dummy_hcd num=N: UDCs dummy_udc.0..N-1, buses 1..N (1..32)
#   --super-speed     dummy_hcd is_super_speed=1
#   --usb-audio       QEMU's usb-audio (46f4:0002, full speed, isochronous OUT) on a
#                     qemu-xhci controller; xhci is loaded after dummy_hcd, so its buses
#                     come after the dummy_hcd ones. No sound driver is loaded.
#   --timeout S (600) --mem MiB (1024) --keep (keep the work dir) -v (say what happens)
# Guest side: /lib/gadget.sh (gadget-initramfs/gadget.sh). More: gadget-vm.md.
#
# The guest is built from Debian packages only (see /work/shared/testbeds.md section 1):
# the current linux-image-<abi>-amd64, busybox-static, udev (systemd-udevd, which libusb
# needs for hot-plug), usbip and the runtime libraries those need. Nothing is installed
# into the host's /boot: packages are fetched with `apt-get download` and unpacked with
# `dpkg -x` into $PVUSB_VM_CACHE (default /var/cache/pvusb-vm), once per kernel ABI.
#
# Exit status: the guest script's own exit status; 124 when the timeout expired; 125 when
# the guest kernel panicked/oopsed, the guest's /init failed, or no result came back;
# 2 on bad usage; 1 when the host-side setup failed.
set -euo pipefail

readonly PROG=gadget-vm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly CACHE=${PVUSB_VM_CACHE:-/var/cache/pvusb-vm}
readonly ARCH_TRIPLET=x86_64-linux-gnu

# Host tools: qemu to run the guest, busybox-static as the guest's userland, cpio to pack
# the initramfs, kmod for modinfo/depmod, binutils for readelf (library closure),
# libc-bin for ldd, xz-utils to unpack the kernel image (see make_vmlinux).
readonly HOST_PACKAGES="qemu-system-x86 busybox-static cpio kmod binutils libc-bin xz-utils"

# Guest packages (besides the kernel). Their library dependencies are added at setup time
# by following apt's Depends, so no soname list is hard-coded here.
#  udev: systemd-udevd (libusb's hot-plug only works when udevd feeds the "udev" netlink
#        group); usbip: userspace for the USB/IP comparison; libusb-1.0-0/libudev1: runtime
#        for libusb test programs; usb.ids: names for usbip/listings.
readonly GUEST_ROOT_PACKAGES="udev libudev1 libusb-1.0-0 usbip usb.ids"
# Programs taken from those packages into the guest (their libraries follow by NEEDED).
readonly GUEST_PROGRAMS="/bin/udevadm /usr/sbin/usbip /usr/sbin/usbipd"

# Kernel modules put into the initramfs (their dependencies are added with modinfo).
# usbip-*/vhci-hcd, usbhid/hid-generic and cdc-acm are shipped but not loaded at boot:
# vhci-hcd would add USB buses and shift the numbering, and host-side class drivers
# would grab gadgets a test may want to reach through libusb. `modprobe NAME` loads them.
readonly MODULES_INCLUDED="configfs usb-common usbcore udc-core libcomposite dummy_hcd
  usb_f_ss_lb usb_f_mass_storage usb_f_hid u_serial usb_f_acm usb_f_serial usb_f_fs
  usb-storage sd_mod scsi_mod
  usbip-core usbip-host vhci-hcd usbhid hid-generic cdc-acm
  xhci-pci xhci-hcd"
# Loaded at boot, in this order (dependencies first through modprobe). dummy_hcd is
# loaded separately by /init because it takes per-run parameters (--udcs).
# xhci-pci is loaded only with --usb-audio (PVUSB_VM_LATE_MODULES, after dummy_hcd):
# without a PCI xHCI it has nothing to drive. snd-usb-audio is not even shipped, so
# nothing in the guest competes with a test for the audio device.
readonly MODULES_BOOT="configfs usbcore libcomposite usb_f_ss_lb usb_f_mass_storage
  usb_f_hid usb_f_acm usb-storage sd_mod"

verbose=0
log() { if ((verbose)); then printf '%s: %s\n' "$PROG" "$*" >&2; fi; }
err() { printf '%s: error: %s\n' "$PROG" "$*" >&2; }
die() { err "$*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------
# Arguments
bins=() files=() script="" timeout_s=600 setup_only=0 keep=0 udcs="" super_speed=0 mem=1024
usb_audio=0
guest_args=()
bad_usage() { err "$*"; exit 2; }
need_arg() { [[ $# -ge 2 && -n $2 ]] || { err "$1 needs an argument"; usage; }; }
while (($#)); do
    case $1 in
    --bin) need_arg "$@"; bins+=("$2"); shift 2 ;;
    --file) need_arg "$@"; files+=("$2"); shift 2 ;;
    --run) need_arg "$@"; script=$2; shift 2 ;;
    --timeout) need_arg "$@"; timeout_s=$2; shift 2 ;;
    --udcs) need_arg "$@"; udcs=$2; shift 2 ;;
    --super-speed) super_speed=1; shift ;;
    --usb-audio) usb_audio=1; shift ;;
    --mem) need_arg "$@"; mem=$2; shift 2 ;;
    --setup-only) setup_only=1; shift ;;
    --keep) keep=1; shift ;;
    -v | --verbose) verbose=1; shift ;;
    -h | --help) usage ;;
    --) shift; guest_args=("$@"); break ;;
    *) err "unknown argument: $1"; usage ;;
    esac
done
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || bad_usage "--timeout wants a positive number of seconds"
[[ $mem =~ ^[1-9][0-9]*$ ]] || bad_usage "--mem wants a size in MiB"
[[ -z $udcs || ($udcs =~ ^[1-9][0-9]?$ && $udcs -le 32) ]] || bad_usage "--udcs wants 1..32 (dummy_hcd's MAX_NUM_UDC)"
if ((!setup_only)); then
    [[ -n $script ]] || { err "--run GUEST_SCRIPT is required (or --setup-only)"; usage; }
    [[ -f $script ]] || bad_usage "guest script not found: $script"
    for b in "${bins[@]}"; do [[ -f $b && -x $b ]] || bad_usage "--bin $b: not an executable file"; done
    for f in "${files[@]}"; do
        [[ $f == *:/* ]] || bad_usage "--file $f: want SRC:/absolute/guest/path"
        [[ -e ${f%%:/*} ]] || bad_usage "--file $f: ${f%%:/*} does not exist"
    done
fi
((EUID == 0)) || die "must run as root (apt-get, and a root-owned initramfs)"

# ---------------------------------------------------------------------------------------
# Setup helpers. Every external command's output goes to a log file, shown only on failure,
# so a successful run stays quiet.
mkdir -p "$CACHE"
SETUP_LOG=$CACHE/setup.log
run() {
    if ! "$@" >>"$SETUP_LOG" 2>&1; then
        err "command failed: $*"
        tail -n 25 "$SETUP_LOG" | sed 's/^/    /' >&2
        exit 1
    fi
}

apt_updated=0
apt_update_once() {
    ((apt_updated)) && return 0
    log "apt-get update"
    run apt-get update -q
    apt_updated=1
}

ensure_host_packages() {
    local missing=() p
    for p in $HOST_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing host packages: ${missing[*]}"
    apt_update_once
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The kernel ABI is whatever linux-image-amd64 points at today: old ABIs vanish from the
# mirror when a new one ships, so it is looked up at every run, never hard-coded.
# apt-cache costs ~0.7 s of CPU, so the answer is remembered for as long as apt's package
# lists and dpkg's status stay the same (they are all apt-cache depends reads).
apt_state_key() {
    stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* /var/lib/dpkg/status 2>/dev/null |
        sha256sum | cut -c1-16
}

kernel_abi() {
    local pkg key k
    key=$(apt_state_key)
    if [[ -f $CACHE/abi.cache ]] && read -r k pkg <"$CACHE/abi.cache" && [[ $k == "$key" && -n $pkg ]]; then
        printf '%s\n' "$pkg"
        return 0
    fi
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n 1)
    if [[ -z $pkg ]]; then
        apt_update_once
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n 1)
    fi
    [[ -n $pkg ]] || die "cannot find the kernel ABI (apt-cache depends linux-image-amd64)"
    # After an apt-get update above, the lists changed: key them anew.
    echo "$(apt_state_key) $pkg" >"$CACHE/abi.cache"
    printf '%s\n' "$pkg"
}

# apt-get download into the current directory. APT::Sandbox::User=root: the _apt user
# cannot write into our root-owned cache.
apt_download() {
    apt-get download -q -o APT::Sandbox::User=root "$@" >>"$SETUP_LOG" 2>&1
}

# Library packages needed by GUEST_ROOT_PACKAGES, following Depends/Pre-Depends level by
# level (one apt-cache call per level: each call costs ~0.5 s) and only through packages
# named lib* - that is where shared libraries live, and it keeps adduser/passwd/... out.
guest_package_closure() {
    local -A seen=()
    local frontier next=() closure=() p
    read -r -a frontier <<<"$GUEST_ROOT_PACKAGES"
    while ((${#frontier[@]})); do
        for p in "${frontier[@]}"; do seen[$p]=1; closure+=("$p"); done
        mapfile -t next < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "${frontier[@]}" |
            awk '/^ *\|?(Pre)?Depends:/ && $NF !~ /^</ && $NF ~ /^lib/ {print $NF}' | sort -u)
        frontier=()
        for p in "${next[@]}"; do [[ -n ${seen[$p]:-} ]] || frontier+=("$p"); done
    done
    printf '%s\n' "${closure[@]}" | sort -u
}

# Resolve a path inside an unpacked tree, following symlinks relative to that tree
# (packages carry absolute links such as /lib64/ld-linux-x86-64.so.2 -> /lib/..., which
# must not escape into the host).
tree_resolve() {
    local root=$1 path=$2 i target
    for ((i = 0; i < 20; i++)); do
        [[ -L $root$path ]] || { printf '%s\n' "$root$path"; return 0; }
        target=$(readlink "$root$path")
        if [[ $target == /* ]]; then path=$target; else path=$(dirname "$path")/$target; fi
    done
    return 1
}

# Find a soname in the unpacked guest tree.
find_lib() {
    local root=$1 soname=$2 d
    for d in /lib/$ARCH_TRIPLET /usr/lib/$ARCH_TRIPLET /lib64 /lib /usr/lib; do
        if [[ -e $root$d/$soname || -L $root$d/$soname ]]; then
            tree_resolve "$root" "$d/$soname" && return 0
        fi
    done
    return 1
}

# Copy an ELF program from the unpacked tree and, transitively, every NEEDED library into
# the staging root. Libraries all go to /lib/$ARCH_TRIPLET (a default search directory
# of the guest's ld.so, which has no ld.so.cache).
copy_with_libs() {
    local tree=$1 stage=$2 prog=$3 real
    real=$(tree_resolve "$tree" "$prog") || die "bad symlink chain: $prog"
    [[ -f $real ]] || die "$prog is not in the unpacked guest packages"
    install -D -m 0755 "$real" "$stage$prog"
    local queue=("$real") f so lib
    while ((${#queue[@]})); do
        f=${queue[0]}; queue=("${queue[@]:1}")
        for so in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ -e $stage/lib/$ARCH_TRIPLET/$so ]] && continue
            lib=$(find_lib "$tree" "$so") || die "$prog needs $so, which no downloaded package has"
            install -D -m 0755 "$lib" "$stage/lib/$ARCH_TRIPLET/$so"
            queue+=("$lib")
        done
    done
}

# ---------------------------------------------------------------------------------------
# Setup: downloads and unpacks once per ABI, (re)builds the base initramfs whenever this
# script or the guest-side files change (their hash is the stamp).
setup() {
    local abi
    : >"$SETUP_LOG" # only this run's setup output is of interest
    ensure_host_packages
    abi=$(kernel_abi)
    set_abi "$abi"
    if [[ ! -e $ABIDIR/unpacked.stamp ]] && ! fetch_abi; then
        # Usually stale package lists: the mirror dropped that ABI when a new one
        # shipped. Update, look the ABI up again and retry once.
        apt_update_once
        abi=$(kernel_abi)
        set_abi "$abi"
        if [[ ! -e $ABIDIR/unpacked.stamp ]] && ! fetch_abi; then
            err "apt-get download failed for kernel $ABI and the guest packages"
            tail -n 25 "$SETUP_LOG" | sed 's/^/    /' >&2
            exit 1
        fi
    fi

    # The kernel QEMU boots: the uncompressed vmlinux when it could be made (PVH entry),
    # else the bzImage.
    if [[ ! -f $ABIDIR/vmlinux && ! -f $ABIDIR/vmlinux.failed ]]; then
        make_vmlinux "$ABIDIR/vmlinux" || touch "$ABIDIR/vmlinux.failed"
    fi
    KERNEL_IMAGE=$VMLINUZ
    [[ -f $ABIDIR/vmlinux ]] && KERNEL_IMAGE=$ABIDIR/vmlinux

    local inputs
    inputs=$( (cat "${BASH_SOURCE[0]}" "$HERE"/gadget-initramfs/*; echo "$ABI") | sha256sum | cut -c1-16)
    if [[ ! -f $BASE_CPIO || $(cat "$ABIDIR/base.stamp" 2>/dev/null) != "$inputs" ]]; then
        log "building the base initramfs"
        build_base "$ABIDIR/base.root"
        echo "$inputs" >"$ABIDIR/base.stamp"
    fi

    # An older ABI is never used again (the mirror dropped it) and costs ~430 MB.
    local d
    for d in "$CACHE"/*-amd64; do
        if [[ -d $d && $d != "$ABIDIR" ]]; then log "removing old $d"; rm -rf "$d"; fi
    done
}

# Debian's vmlinuz is an xz-compressed bzImage; decompressing it inside a TCG guest
# takes ~2.5 s of every boot. The vmlinux inside it carries a PVH entry note
# (XEN_ELFNOTE_PHYS32_ENTRY, type 0x12), so QEMU can boot it directly: extract it once.
make_vmlinux() {
    local out=$1 off
    off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$VMLINUZ" | head -n 1 | cut -d: -f1)
    [[ -n $off ]] || { log "no xz stream in $VMLINUZ; booting the bzImage"; return 1; }
    # xz stops after the stream (trailing bytes follow), so tail may die of SIGPIPE:
    # feed it through a process substitution, whose status does not count.
    if ! xz -dc --single-stream < <(tail -c +"$((off + 1))" "$VMLINUZ") >"$out.tmp" 2>/dev/null ||
        ! readelf -n "$out.tmp" 2>/dev/null | grep -q -E '\(0x0+12\)|PHYS32_ENTRY'; then
        log "could not extract a PVH vmlinux from $VMLINUZ; booting the bzImage"
        rm -f "$out.tmp"
        return 1
    fi
    mv "$out.tmp" "$out"
}

set_abi() {
    ABI=$1
    ABIDIR=$CACHE/$ABI
    KTREE=$ABIDIR/kernel
    GTREE=$ABIDIR/guest
    BASE_CPIO=$ABIDIR/base.cpio
    VMLINUZ=$KTREE/boot/vmlinuz-$ABI
}

# Download and unpack the kernel and the guest packages; non-zero if a download failed.
fetch_abi() {
    local dl=$ABIDIR/debs pkgs deb
    log "downloading and unpacking packages for $ABI"
    # (Called as a condition, where set -e is off: failures are checked by hand.)
    rm -rf "$dl" "$KTREE" "$GTREE" "$ABIDIR/vmlinux" "$ABIDIR/vmlinux.failed"
    mkdir -p "$dl" "$KTREE" "$GTREE" || die "cannot create $ABIDIR"
    mapfile -t pkgs < <(guest_package_closure)
    (cd "$dl" && apt_download "linux-image-$ABI" "${pkgs[@]}") || return 1
    for deb in "$dl"/*.deb; do
        case $(basename "$deb") in
        linux-image-*) run dpkg -x "$deb" "$KTREE" ;;
        *) run dpkg -x "$deb" "$GTREE" ;;
        esac
    done
    [[ -f $VMLINUZ ]] || die "no $VMLINUZ in the kernel package"
    # The .debs are unpacked; keep only the trees (saves ~75 MB).
    rm -rf "$dl"
    touch "$ABIDIR/unpacked.stamp"
}

# Module name -> path relative to /lib/modules/$ABI, for every .ko of the kernel package.
# modinfo and modprobe treat '-' and '_' alike, so names are normalized to '_'.
declare -A MODPATH=()
index_modules() {
    local mdir=$KTREE/lib/modules/$ABI rel
    while IFS= read -r rel; do
        local n=${rel##*/}; n=${n%.ko}; n=${n//-/_}
        MODPATH[$n]=$rel
    done < <(cd "$mdir" && find kernel -name '*.ko' | sort)
}

declare -A MOD_VISITED=()
MOD_ORDER=()
# Depth-first walk over `modinfo -F depends`, appending each module after its
# dependencies; built-in modules need no file.
visit_module() {
    local n=${1//-/_} d
    [[ -n ${MOD_VISITED[$n]:-} ]] && return 0
    MOD_VISITED[$n]=1
    if [[ -z ${MODPATH[$n]:-} ]]; then
        grep -q "/${n}.ko\$\|/${n//_/-}.ko\$" "$KTREE/lib/modules/$ABI/modules.builtin" && return 0
        die "kernel module $1 is neither in the kernel package nor built in"
    fi
    local deps
    deps=$(modinfo -F depends "$KTREE/lib/modules/$ABI/${MODPATH[$n]}")
    for d in ${deps//,/ }; do visit_module "$d"; done
    MOD_ORDER+=("$n")
}

build_base() {
    local stage=$1 m
    rm -rf "$stage"
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib/$ARCH_TRIPLET,lib64}
    mkdir -p "$stage"/{dev,proc,sys,run,tmp,test,etc/udev,etc/pvusb-vm,usr/share/misc,var/run}

    # busybox as the whole userland; one symlink per applet, made here so that /init
    # does not spend boot time on `busybox --install`.
    install -m 0755 /bin/busybox "$stage/bin/busybox"
    local applet
    while IFS= read -r applet; do
        [[ -e $stage/$applet || $applet == bin/busybox ]] && continue
        mkdir -p "$stage/$(dirname "$applet")"
        ln -s /bin/busybox "$stage/$applet"
    done < <(/bin/busybox --list-full)

    # udevd: /lib/systemd/systemd-udevd is a symlink to udevadm (as in the package).
    local p
    for p in $GUEST_PROGRAMS; do copy_with_libs "$GTREE" "$stage" "$p"; done
    mkdir -p "$stage/lib/systemd"
    ln -s /bin/udevadm "$stage/lib/systemd/systemd-udevd"
    ln -s /lib/$ARCH_TRIPLET/ld-linux-x86-64.so.2 "$stage/lib64/ld-linux-x86-64.so.2"
    # The guest's libusb itself, for test programs (a --bin's own ldd list overrides it).
    for p in libusb-1.0.so.0 libudev.so.1; do
        install -m 0755 "$(find_lib "$GTREE" "$p")" "$stage/lib/$ARCH_TRIPLET/$p"
    done
    for p in usr/share/misc/usb.ids usr/share/hwdata/usb.ids; do
        [[ -e $GTREE/$p ]] && cp -L "$GTREE/$p" "$stage/usr/share/misc/usb.ids" && break
    done

    # Kernel modules plus modules.dep made by the host's depmod on exactly this subset,
    # so the guest's busybox modprobe (and the kernel's request_module) can load them.
    index_modules
    for m in $MODULES_INCLUDED; do visit_module "$m"; done
    local mdir=$KTREE/lib/modules/$ABI
    for m in "${MOD_ORDER[@]}"; do
        install -D -m 0644 "$mdir/${MODPATH[$m]}" "$stage/lib/modules/$ABI/${MODPATH[$m]}"
    done
    cp "$mdir"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$ABI/"
    run depmod -b "$stage" "$ABI"

    install -m 0755 "$HERE/gadget-initramfs/init" "$stage/init"
    install -m 0644 "$HERE/gadget-initramfs/gadget.sh" "$stage/lib/gadget.sh"
    echo "PVUSB_VM_BOOT_MODULES='$(tr -s ' \n' '  ' <<<"$MODULES_BOOT")'" >"$stage/etc/pvusb-vm/base.conf"
    echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
    echo "root:x:0:" >"$stage/etc/group"
    printf '127.0.0.1 localhost\n::1 localhost\n' >"$stage/etc/hosts"

    pack_cpio "$stage" "$BASE_CPIO"
}

# newc cpio with fixed owner and mtimes: the same inputs give the same archive.
# No entry for "." (the kernel's unpacker would try to mkdir it).
pack_cpio() {
    local stage=$1 out=$2
    (cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out.tmp"
    mv "$out.tmp" "$out"
}

# ---------------------------------------------------------------------------------------
# Per-run initramfs: the caller's programs (with the libraries ldd lists on the host), files,
# script and settings. The kernel unpacks it after the base archive, so its files win.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

build_run_cpio() {
    local stage=$1 out=$2 b lib dst
    mkdir -p "$stage"/{usr/local/bin,lib/$ARCH_TRIPLET,test,etc/pvusb-vm}
    for b in "${bins[@]}"; do
        install -m 0755 "$b" "$stage/usr/local/bin/$(basename "$b")"
        # ldd fails on static programs and scripts: those need no libraries.
        local ldd_out
        ldd_out=$(ldd "$b" 2>/dev/null) || continue
        if grep -q 'not found' <<<"$ldd_out"; then
            die "--bin $b: ldd cannot find: $(grep 'not found' <<<"$ldd_out" | awk '{print $1}' | xargs)"
        fi
        while read -r lib; do
            # Standard library directories collapse into /lib/$ARCH_TRIPLET; anything else
            # (e.g. a build tree's own .so) keeps its host path.
            case $(dirname "$lib") in
            "/lib/$ARCH_TRIPLET" | "/usr/lib/$ARCH_TRIPLET" | /lib64 | /lib | /usr/lib)
                dst=/lib/$ARCH_TRIPLET/$(basename "$lib") ;;
            *) dst=$lib ;;
            esac
            install -D -m 0755 "$(readlink -f "$lib")" "$stage$dst"
        done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$ldd_out")
    done
    local f src
    for f in "${files[@]}"; do
        src=${f%%:/*}; dst=/${f#*:/}
        if [[ -d $src ]]; then
            mkdir -p "$stage$dst" && cp -a "$src/." "$stage$dst/"
        else
            [[ $dst == */ ]] && dst=$dst$(basename "$src")
            install -D -m "$(stat -c %a "$src")" "$src" "$stage$dst"
        fi
    done
    local guest_script
    guest_script=/test/$(basename "$script")
    install -m 0755 "$script" "$stage$guest_script"

    local dummy_params=""
    [[ -n $udcs ]] && dummy_params+=" num=$udcs"
    ((super_speed)) && dummy_params+=" is_super_speed=1"
    {
        echo "PVUSB_VM_SCRIPT=$(sq "$guest_script")"
        echo "PVUSB_VM_DUMMY_HCD_PARAMS=$(sq "${dummy_params# }")"
        if ((usb_audio)); then echo "PVUSB_VM_LATE_MODULES='xhci_pci'"; fi
        printf 'set --'
        for a in "${guest_args[@]}"; do printf ' %s' "$(sq "$a")"; done
        echo
    } >"$stage/etc/pvusb-vm/run.conf"
    pack_cpio "$stage" "$out"
}

# ---------------------------------------------------------------------------------------
# Setup runs under a lock so that concurrent runs share one cache safely.
exec 9>"$CACHE/.lock"
flock 9
setup
flock -u 9
if ((setup_only)); then
    log "cache ready in $ABIDIR"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pvusb-vm.XXXXXX")
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    # Interrupted: background jobs of a script ignore SIGINT, so stop QEMU by hand
    # (timeout passes the TERM on to it).
    [[ -n ${qemu_pid:-} ]] && kill "$qemu_pid" 2>/dev/null
    [[ -n ${tail_pid:-} ]] && kill "$tail_pid" 2>/dev/null
    if ((rc == 0 && !keep)); then rm -rf "$work"; else echo "$PROG: logs kept in $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_run_cpio "$work/run.root" "$work/run.cpio"
# QEMU takes one initrd; the kernel unpacks concatenated newc archives in order.
cat "$BASE_CPIO" "$work/run.cpio" >"$work/initrd.cpio"

# Two UARTs: ttyS0 carries the kernel console (kept in console.log, shown on failure),
# ttyS1 carries only the guest script's output and the final result line.
: >"$work/console.log"
: >"$work/output.log"
cmdline="console=ttyS0,115200 rdinit=/init panic=-1 oops=panic loglevel=6"
# -accel tcg: KVM hangs at boot on these machines. -smp 1: timings stay stable, and
# usbip-host crashed on 2 vCPUs. -no-reboot + panic=-1: a panic ends QEMU at once.
qemu=(qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m "$mem" -machine pc
    -nodefaults -display none -no-reboot -nic none -monitor none
    -chardev "file,id=con,path=$work/console.log" -serial chardev:con
    -chardev "file,id=out,path=$work/output.log" -serial chardev:out
    -kernel "$KERNEL_IMAGE" -initrd "$work/initrd.cpio" -append "$cmdline")
# usb-audio's isochronous OUT endpoint is a real one for the guest's xHCI. audiodev
# none plays into nothing at the real-time rate; buffer (bytes, 100 ms of 48 kHz
# 16-bit stereo) is a margin over the default of a few packets, against audio timer
# jitter under TCG: an overrun of the device's ring would show as short packets.
if ((usb_audio)); then
    qemu+=(-device "qemu-xhci,id=xhci" -audiodev "none,id=snd0"
        -device "usb-audio,bus=xhci.0,audiodev=snd0,buffer=19200")
fi
log "${qemu[*]}"

start_ms=$(($(date +%s%N) / 1000000))
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" >"$work/qemu.log" 2>&1 &
qemu_pid=$!
# Stream the guest's output while it runs (benchmarks can take minutes); the result
# line is for this script, not for the reader. tail ends when QEMU does.
tail -n +1 -s 0.2 --pid="$qemu_pid" -f "$work/output.log" |
    sed -u -e 's/\r$//' -e '/^PVUSB-VM-RESULT: /d' &
tail_pid=$!
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=""
wait "$tail_pid" || true
tail_pid=""
log "guest ran $(($(date +%s%N) / 1000000 - start_ms)) ms (qemu exit $qemu_rc)"

CRASH_RE='Kernel panic|BUG: |Oops: |general protection fault|WARNING: CPU: .* at '
# Kernel messages since the test started (the boot log before it is rarely of interest).
# Before the test started (a boot failure), the end of the whole log.
show_console() {
    local from=1
    grep -q '^pvusb-vm: ready' "$work/console.log" && from='/^pvusb-vm: ready/'
    echo "---- guest kernel console, last ${1:-40} lines ($work/console.log) ----" >&2
    sed -e 's/\r$//' -e "$from,\$!d" -e '/^PVUSB-VM-RESULT/d' "$work/console.log" |
        tail -n "${1:-40}" >&2
}
# From a few lines before the first sign of the crash, so the oops header is not lost.
show_crash() {
    local first
    first=$(sed 's/\r$//' "$work/console.log" | grep -n -E "$CRASH_RE" | head -n 1 | cut -d: -f1)
    echo "---- guest kernel console from the crash ($work/console.log) ----" >&2
    sed 's/\r$//' "$work/console.log" | tail -n +"$((first > 5 ? first - 5 : 1))" | head -n 100 >&2
}

result=$(sed -n 's/\r$//; s/^PVUSB-VM-RESULT: rc=\([0-9]*\)$/\1/p' "$work/output.log" | tail -n 1)
if grep -q -E 'Kernel panic|BUG: |Oops: |general protection fault' "$work/console.log"; then
    # With oops=panic every oops ends here; the exit status of the guest script is moot.
    err "the guest kernel crashed"
    show_crash
    exit 125
fi
if ((qemu_rc == 124 || qemu_rc == 137)); then
    err "timeout: the guest did not finish within ${timeout_s}s"
    show_console
    exit 124
fi
if ((qemu_rc != 0)); then
    err "qemu failed (exit $qemu_rc)"
    sed 's/^/    /' "$work/qemu.log" >&2
    show_console
    exit 125
fi
if [[ -z $result ]]; then
    err "the guest powered off without reporting a result"
    show_console
    exit 125
fi
if ((result != 0)); then
    err "guest script $(basename "$script") failed with exit status $result"
    show_console 20
elif grep -q -E "$CRASH_RE" "$work/console.log"; then
    # A kernel WARNING does not stop the test but is worth a look.
    err "the guest kernel printed a warning (test passed)"
    show_crash
    keep=1
fi
exit "$result"
