# shellcheck shell=dash
# /lib/gadget.sh - configfs USB gadget helpers for the pvusb gadget VM (busybox ash).
# Source it from a guest test script:   . /lib/gadget.sh
#
# A gadget bound to UDC dummy_udc.N appears to the guest's own USB host stack as a
# high-speed device on the bus of dummy_hcd.N, at port path "<bus>-1" (bus 1 for
# dummy_udc.0 when the VM was started without --udcs). With --super-speed it shows up
# on that HCD's SuperSpeed bus instead.
#
# One gadget, one call (name $GADGET_NAME, default g1, on $GADGET_UDC, default dummy_udc.0):
#   gadget_sourcesink [BULK_BUFLEN | ATTR=VALUE]...   SourceSink, pattern=1
#   gadget_storage FILE [size=MiB] [ATTR=VALUE]...    mass storage backed by FILE (made
#                                                     sparse, 64 MiB, if missing)
#   gadget_hid [report_desc=HEX] [ATTR=VALUE]...       boot-keyboard HID (/dev/hidgN)
#   gadget_acm [ATTR=VALUE]...                         CDC ACM serial (/dev/ttyGSN)
# Composite gadgets, or several gadgets on several UDCs:
#   gadget_new NAME [VID] [PID]; gadget_add_sourcesink NAME ...; gadget_add_storage NAME
#   FILE ...; gadget_add_hid NAME ...; gadget_add_acm NAME ...; gadget_bind NAME [UDC]
# Plugging:
#   gadget_unplug NAME   write an empty line to UDC (a physical unplug), wait until gone
#   gadget_replug NAME   bind to the same UDC again, wait until configured
#   gadget_remove NAME   unplug and dismantle the configfs tree
# Queries:
#   gadget_port NAME     host-side port path, e.g. 1-1
#   gadget_sysfs NAME    /sys/bus/usb/devices/<port>
#   gadget_devnode NAME  /dev/bus/usb/BBB/DDD of the current enumeration
#   gadget_host_node NAME CLASS   host-side node a driver made, e.g. CLASS block -> /dev/sda
#   gadget_hidg NAME / gadget_acm_tty NAME   gadget-side character devices
#   gadget_udcs          the UDCs the kernel offers
#   gadget_wait_for SECONDS CMD...   poll CMD every 20 ms until it succeeds
#
# ATTR=VALUE pairs are written to the function's configfs attributes (for mass storage,
# to lun.0 when the LUN has that attribute), e.g. bulk_buflen=65536 bulk_qlen=16, or
# ro=1 removable=1. Bind waits until the host has configured the device and unplug until
# it is gone (up to $GADGET_TIMEOUT s, default 10), so a script can check right away;
# set GADGET_NOWAIT=1 to skip the waiting.
# Every function returns non-zero with a message on stderr when something fails.

GADGET_CFS=/sys/kernel/config/usb_gadget
GADGET_STATE=/run/gadget
: "${GADGET_NAME:=g1}"
: "${GADGET_UDC:=dummy_udc.0}"
: "${GADGET_VID:=0x1d6b}"
: "${GADGET_PID:=0x0104}"
: "${GADGET_TIMEOUT:=10}"
: "${GADGET_NOWAIT:=}"

# A USB boot keyboard (the example from the kernel's gadget_hid documentation):
# 8-byte input reports (modifiers, reserved, 6 key codes) and a 1-byte LED output report.
GADGET_HID_KEYBOARD_DESC=05010906a101050719e029e71500250175019508810295017508810395057501
GADGET_HID_KEYBOARD_DESC=${GADGET_HID_KEYBOARD_DESC}050819012905910295017503910395067508150025650507190029658100c0

# Test bookkeeping for guest scripts: check DESCRIPTION CMD... counts a
# pass or a failure; check_summary NAME prints "NAME: N passed, N failed"
# and fails when anything did.
passed=0
failed=0
check() {
    local what="$1"
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $what"
    fi
}

check_summary() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

gadget_err() {
    echo "gadget.sh: $*" >&2
    return 1
}

# configfs attributes take a whole value in one write(); busybox printf does one.
_g_write() {
    printf '%s\n' "$2" >"$1" 2>/dev/null || gadget_err "cannot write '$2' to $1"
}

_g_dir() {
    [ -d "$GADGET_CFS/$1" ] || gadget_err "no gadget named '$1' (gadget_new first)" || return 1
    echo "$GADGET_CFS/$1"
}

gadget_wait_for() {
    local n=$(($1 * 50))
    shift
    while ! "$@"; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        usleep 20000
    done
}

gadget_udcs() {
    ls /sys/class/udc
}

# The host-side buses that belong to a UDC: dummy_udc.N is paired with dummy_hcd.N,
# whose root hubs are /sys/devices/platform/dummy_hcd.N/usbB (two with --super-speed).
_g_buses() {
    local d
    for d in /sys/devices/platform/dummy_hcd."${1##*.}"/usb*; do
        [ -e "$d/busnum" ] && cat "$d/busnum"
    done
}

_g_udc_port() {
    local b
    for b in $(_g_buses "$1"); do
        if [ -e "/sys/bus/usb/devices/$b-1/idVendor" ]; then
            echo "$b-1"
            return 0
        fi
    done
    return 1
}

# Enumerated and configured by the host (bConfigurationValue is empty until then).
_g_udc_configured() {
    local p
    p=$(_g_udc_port "$1") || return 1
    [ -n "$(cat "/sys/bus/usb/devices/$p/bConfigurationValue" 2>/dev/null)" ]
}

_g_udc_absent() {
    ! _g_udc_port "$1" >/dev/null
}

_g_udc_of() {
    [ -s "$GADGET_STATE/$1.udc" ] || gadget_err "gadget '$1' was never bound" || return 1
    cat "$GADGET_STATE/$1.udc"
}

gadget_port() {
    local udc
    udc=$(_g_udc_of "$1") || return 1
    _g_udc_port "$udc" || gadget_err "gadget '$1' is not visible on the host side"
}

gadget_sysfs() {
    local p
    p=$(gadget_port "$1") || return 1
    echo "/sys/bus/usb/devices/$p"
}

gadget_devnode() {
    local s
    s=$(gadget_sysfs "$1") || return 1
    printf '/dev/bus/usb/%03d/%03d\n' "$(cat "$s/busnum")" "$(cat "$s/devnum")"
}

# /dev node of the first device of class CLASS (block, hidraw, tty, ...) that a host-side
# driver made for the gadget, e.g. gadget_host_node disk block -> /dev/sda. Drivers bind
# asynchronously: wrap in gadget_wait_for when calling right after a bind.
gadget_host_node() {
    local s n
    s=$(gadget_sysfs "$1") || return 1
    s=$(readlink -f "$s")
    for n in /sys/class/"$2"/*; do
        case $(readlink -f "$n/device" 2>/dev/null) in
        "$s" | "$s"/*)
            echo "/dev/${n##*/}"
            return 0
            ;;
        esac
    done
    return 1
}

gadget_new() {
    local name="$1" vid="${2:-$GADGET_VID}" pid="${3:-$GADGET_PID}" g
    [ -n "$name" ] || gadget_err "gadget_new: name missing" || return 1
    g=$GADGET_CFS/$name
    [ ! -e "$g" ] || gadget_err "gadget '$name' already exists" || return 1
    [ -d "$GADGET_CFS" ] || gadget_err "$GADGET_CFS missing (configfs/libcomposite)" || return 1
    mkdir "$g" || return 1
    _g_write "$g/idVendor" "$vid" &&
        _g_write "$g/idProduct" "$pid" &&
        _g_write "$g/bcdDevice" 0x0100 &&
        mkdir "$g/strings/0x409" &&
        _g_write "$g/strings/0x409/manufacturer" "pvusb" &&
        _g_write "$g/strings/0x409/product" "pvusb test gadget $name" &&
        _g_write "$g/strings/0x409/serialnumber" "pvusb-$name" &&
        mkdir "$g/configs/c.1" &&
        mkdir "$g/configs/c.1/strings/0x409" &&
        _g_write "$g/configs/c.1/strings/0x409/configuration" "pvusb $name" &&
        _g_write "$g/configs/c.1/MaxPower" 100
}

# Make the next free instance of function TYPE (TYPE.0, TYPE.1, ...) in gadget NAME.
_g_func() {
    local g n=0
    g=$(_g_dir "$1") || return 1
    while [ -e "$g/functions/$2.$n" ]; do n=$((n + 1)); done
    mkdir "$g/functions/$2.$n" || gadget_err "cannot create function $2 (module loaded?)" || return 1
    echo "$g/functions/$2.$n"
}

_g_link() {
    local g
    g=$(_g_dir "$1") || return 1
    ln -s "$2" "$g/configs/c.1/" || gadget_err "cannot add $(basename "$2") to config c.1"
}

_g_attrs() {
    local f="$1" a
    shift
    for a in "$@"; do
        case $a in
        *=*) _g_write "$f/${a%%=*}" "${a#*=}" || return 1 ;;
        *) gadget_err "expected ATTR=VALUE, got '$a'" || return 1 ;;
        esac
    done
}

gadget_add_sourcesink() {
    local name="$1" f a
    shift
    f=$(_g_func "$name" SourceSink) || return 1
    # pattern 1: byte j of every max-size packet (512 at high speed) is j % 63; a reader
    # can verify it, and the sink checks OUT data against it (mismatch: it stalls).
    _g_write "$f/pattern" 1 || return 1
    for a in "$@"; do
        case $a in
        *=*) _g_attrs "$f" "$a" || return 1 ;;
        *[!0-9]* | '') gadget_err "gadget_add_sourcesink: bad argument '$a'" || return 1 ;;
        *) _g_write "$f/bulk_buflen" "$a" || return 1 ;;
        esac
    done
    _g_link "$name" "$f"
}

gadget_add_storage() {
    local name="$1" file="$2" size=64 f a key
    shift 2 || { gadget_err "gadget_add_storage NAME FILE [size=MiB] [ATTR=VALUE]..."; return 1; }
    for a in "$@"; do case $a in size=*) size=${a#size=} ;; esac; done
    if [ ! -e "$file" ]; then
        mkdir -p "$(dirname "$file")" && truncate -s "${size}M" "$file" ||
            gadget_err "cannot create backing file $file" || return 1
    fi
    f=$(_g_func "$name" mass_storage) || return 1
    # LUN attributes (ro, removable, cdrom, nofua, inquiry_string) must be set before
    # the file is opened; function ones (stall, num_buffers) live one level up.
    for a in "$@"; do
        case $a in
        size=*) ;;
        *=*)
            key=${a%%=*}
            if [ -e "$f/lun.0/$key" ]; then _g_attrs "$f/lun.0" "$a" || return 1
            else _g_attrs "$f" "$a" || return 1; fi
            ;;
        *) gadget_err "gadget_add_storage: bad argument '$a'" || return 1 ;;
        esac
    done
    _g_write "$f/lun.0/file" "$file" || return 1
    _g_link "$name" "$f"
}

gadget_add_hid() {
    local name="$1" desc="$GADGET_HID_KEYBOARD_DESC" f a len
    shift
    for a in "$@"; do case $a in report_desc=*) desc=${a#report_desc=} ;; esac; done
    f=$(_g_func "$name" hid) || return 1
    _g_write "$f/protocol" 1 && _g_write "$f/subclass" 1 && _g_write "$f/report_length" 8 ||
        return 1
    for a in "$@"; do
        case $a in
        report_desc=*) ;;
        *) _g_attrs "$f" "$a" || return 1 ;;
        esac
    done
    # Binary attribute: hex -> bytes in one write.
    echo "$desc" | xxd -r -p >"$f/report_desc" || gadget_err "cannot write report_desc" || return 1
    len=$(wc -c <"$f/report_desc")
    [ "$len" -eq $((${#desc} / 2)) ] || gadget_err "report_desc: wrote ${#desc} hex digits, reads back $len bytes" || return 1
    _g_link "$name" "$f"
}

gadget_add_acm() {
    local name="$1" f
    shift
    f=$(_g_func "$name" acm) || return 1
    _g_attrs "$f" "$@" && _g_link "$name" "$f"
}

# Gadget-side device nodes of the first HID / ACM function of a gadget.
gadget_hidg() {
    local g
    g=$(_g_dir "$1") || return 1
    echo "/dev/hidg$(cut -d: -f2 "$g/functions/hid.0/dev")"
}

gadget_acm_tty() {
    local g
    g=$(_g_dir "$1") || return 1
    echo "/dev/ttyGS$(cat "$g/functions/acm.0/port_num")"
}

gadget_bind() {
    local name="$1" udc="${2:-$GADGET_UDC}" g
    g=$(_g_dir "$name") || return 1
    [ -e "/sys/class/udc/$udc" ] || gadget_err "no UDC $udc (have: $(gadget_udcs | tr '\n' ' '))" || return 1
    mkdir -p "$GADGET_STATE"
    _g_write "$g/UDC" "$udc" || return 1
    echo "$udc" >"$GADGET_STATE/$name.udc"
    [ -n "$GADGET_NOWAIT" ] && return 0
    gadget_wait_for "$GADGET_TIMEOUT" _g_udc_configured "$udc" ||
        gadget_err "gadget '$name' on $udc: host did not configure it within ${GADGET_TIMEOUT}s"
}

gadget_unplug() {
    local name="$1" g udc
    g=$(_g_dir "$name") || return 1
    udc=$(_g_udc_of "$name") || return 1
    [ -n "$(cat "$g/UDC")" ] || gadget_err "gadget '$name' is not plugged in" || return 1
    _g_write "$g/UDC" "" || return 1
    [ -n "$GADGET_NOWAIT" ] && return 0
    gadget_wait_for "$GADGET_TIMEOUT" _g_udc_absent "$udc" ||
        gadget_err "gadget '$name': host still sees it ${GADGET_TIMEOUT}s after unplug"
}

gadget_replug() {
    local udc
    udc=$(_g_udc_of "$1") || return 1
    gadget_bind "$1" "$udc"
}

gadget_remove() {
    local name="$1" g x
    g=$(_g_dir "$name") || return 1
    if [ -n "$(cat "$g/UDC")" ]; then gadget_unplug "$name" || return 1; fi
    # configfs wants the tree dismantled bottom-up: links, config strings, configs,
    # functions, gadget strings, gadget.
    for x in "$g"/configs/*/*; do [ -L "$x" ] && rm "$x"; done
    for x in "$g"/configs/*/strings/*; do [ -d "$x" ] && rmdir "$x"; done
    for x in "$g"/configs/*; do [ -d "$x" ] && rmdir "$x"; done
    for x in "$g"/functions/*; do [ -d "$x" ] && rmdir "$x"; done
    for x in "$g"/strings/*; do [ -d "$x" ] && rmdir "$x"; done
    rmdir "$g" || gadget_err "cannot remove $g" || return 1
    rm -f "$GADGET_STATE/$name.udc"
}

# One gadget with a single function of KIND, bound to the first UDC.
gadget_one() { # KIND ARGS...
    local kind="$1"
    shift
    gadget_new "$GADGET_NAME" && "gadget_add_$kind" "$GADGET_NAME" "$@" &&
        gadget_bind "$GADGET_NAME"
}

gadget_sourcesink() { gadget_one sourcesink "$@"; }
gadget_storage() { gadget_one storage "$@"; }
gadget_hid() { gadget_one hid "$@"; }
gadget_acm() { gadget_one acm "$@"; }
