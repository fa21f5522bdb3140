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
#       XT_DOMU_CFG_EXTRA (extra xl.cfg lines).
#   wait_domu_log PATTERN TIMEOUT [NAME]
#       Wait until the console log of NAME (default $DOMU) matches the extended regex
#       PATTERN; on timeout print the end of the log and return 1.
#   domu_log [NAME]          print the console log of NAME (default $DOMU)
#   domu_log_file [NAME]     path of that log
#   domu_id [NAME]           domid of NAME
#   xt_now                   seconds since the epoch, with fractions (for timings)
#   xt_since T0              seconds elapsed since xt_now printed T0, one decimal
XT_DIR=/var/lib/xen-test
XT_CONSOLE_DIR=/var/log/xen/console
DOMU=${DOMU:-}

xt_now() { date +%s.%N; }
xt_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'; }

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
kernel = "$XT_DIR/vmlinuz"
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
    end=$(awk -v a="$(date +%s.%N)" -v t="$timeout" 'BEGIN { printf "%.3f", a + t }')
    while :; do
        if [ -f "$f" ] && tr -d '\r' <"$f" | grep -qE -- "$pattern"; then
            return 0
        fi
        if awk -v a="$(date +%s.%N)" -v b="$end" 'BEGIN { exit !(a > b) }'; then
            echo "wait_domu_log: '$pattern' not seen in domU $name's console within $timeout s; last lines:" >&2
            [ -f "$f" ] && tail -n 20 "$f" | tr -d '\r' | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.2
    done
}
