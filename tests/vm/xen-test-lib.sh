# /lib/xen-test.sh: helpers for dom0 test scripts run by xen-vm.sh. Source it:
#     . /lib/xen-test.sh
#
#   start_domu NAME [USBCTRL] [DOMU_SCRIPT]
#       Create PV domU NAME from the shared vmlinuz and the busybox ramdisk whose /init
#       loads xen-hcd ("PVUSB-DOMU: xen-hcd loaded" on its console). USBCTRL, if not
#       empty, becomes `usbctrl = [ "USBCTRL" ]` (e.g. "type=pv,version=2,ports=8"):
#       xl create then waits for a backend to reach InitWait and fails without one.
#       DOMU_SCRIPT (a dom0 path) is run by the domU's /init as /domu.sh after xen-hcd
#       is loaded; it prints "PVUSB-DOMU-RESULT: rc=N" when done. Sets DOMU=NAME.
#       Tunables: XT_DOMU_MEM (MiB, 256), XT_DOMU_VCPUS (1), XT_DOMU_ARGS (kernel args),
#       XT_DOMU_CFG_EXTRA (extra xl.cfg lines), XT_DOMU_KERNEL (default: the dom0 kernel,
#       uncompressed, at /var/lib/xen-test/vmlinux). The config is /etc/xen/NAME.cfg.
#   wait_domu_log PATTERN TIMEOUT [NAME]
#       Wait until the console log of NAME (default $DOMU) matches the extended regex
#       PATTERN (grep -E; lines end in CR, so anchor with ^ rather than $); TIMEOUT
#       is whole seconds. On timeout print the end of the log and return 1.
#   domu_log [NAME]          print the console log of NAME (default $DOMU)
#   domu_log_file [NAME]     path of that log
#   domu_id [NAME]           domid of NAME
#   xt_now                   seconds since the epoch, with fractions (for timings)
#   xt_since T0              seconds elapsed since xt_now printed T0, one decimal
XT_DIR=/var/lib/xen-test
XT_CONSOLE_DIR=/var/log/xen/console
DOMU=${DOMU:-}

# Process creation is slow in a PV dom0 under TCG (~0.1 s per fork+exec, several times
# that for a pipeline): these helpers use bash built-ins ($EPOCHREALTIME) where they can.
xt_now() { echo "$EPOCHREALTIME"; }
xt_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'; }

# The uncompressed vmlinux when present: decompressing the xz bzImage in dom0 under TCG
# takes seconds on every xl create.
xt_domu_kernel() { if [ -f "$XT_DIR/vmlinux" ]; then echo "$XT_DIR/vmlinux"; else echo "$XT_DIR/vmlinuz"; fi; }

domu_log_file() { echo "$XT_CONSOLE_DIR/guest-${1:-$DOMU}.log"; }
domu_log() { tr -d '\r' <"$(domu_log_file "${1:-$DOMU}")"; }
domu_id() { xl domid "${1:-$DOMU}"; }

start_domu() {
    local name=${1:?start_domu NAME [USBCTRL] [DOMU_SCRIPT]} usbctrl=${2:-} script=${3:-}
    local rd="$XT_DIR/ramdisk-$name.cpio" cfg="/etc/xen/$name.cfg" tmp
    # The ramdisk is the cached base + this run's domU files + the optional per-domain
    # script, as concatenated cpio archives (the kernel unpacks them in order).
    cat "$XT_DIR/domu-base.cpio" "$XT_DIR/domu-run.cpio" >"$rd" || return 1
    if [ -n "$script" ]; then
        tmp=$(mktemp -d)
        cp "$script" "$tmp/domu.sh" && chmod 755 "$tmp/domu.sh" &&
            (cd "$tmp" && echo domu.sh | cpio -o -H newc -R 0:0 --quiet) >>"$rd" ||
            { rm -rf "$tmp"; return 1; }
        rm -rf "$tmp"
    fi
    mkdir -p /etc/xen
    cat >"$cfg" <<EOF
name = "$name"
type = "pv"
kernel = "${XT_DOMU_KERNEL:-$(xt_domu_kernel)}"
ramdisk = "$rd"
extra = "console=hvc0 rdinit=/init panic_on_oops=1 ${XT_DOMU_ARGS:-}"
memory = ${XT_DOMU_MEM:-256}
vcpus = ${XT_DOMU_VCPUS:-1}
on_crash = "preserve"
${XT_DOMU_CFG_EXTRA:-}
EOF
    [ -z "$usbctrl" ] || echo "usbctrl = [ \"$usbctrl\" ]" >>"$cfg"
    # A log left by an earlier domain of the same name would satisfy wait_domu_log early.
    rm -f "$(domu_log_file "$name")"
    DOMU=$name
    xl create "$cfg"
}

wait_domu_log() {
    local pattern=${1:?wait_domu_log PATTERN TIMEOUT [NAME]} timeout=${2:?} name=${3:-$DOMU}
    local f end
    f=$(domu_log_file "$name")
    # Whole microseconds from $EPOCHREALTIME, so the loop needs no date/awk processes.
    end=$(( ${EPOCHREALTIME/./} + timeout * 1000000 ))
    while :; do
        # -a: console logs may hold control bytes; CR line ends do not disturb ^-anchors.
        if [ -f "$f" ] && grep -aqE -- "$pattern" "$f"; then
            return 0
        fi
        if [ "${EPOCHREALTIME/./}" -gt "$end" ]; then
            echo "wait_domu_log: '$pattern' not seen in domU $name's console within $timeout s; last lines:" >&2
            [ -f "$f" ] && tail -n 20 "$f" | tr -d '\r' | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.3
    done
}
