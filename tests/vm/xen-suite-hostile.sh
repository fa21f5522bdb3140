# tests/vm/xen-suite-hostile.sh: hostile xenstore values against pvusbd, in dom0 as root.
# Sourced by xen-suite-dom0.sh near its end (it is /root/xen-suite-hostile.sh in dom0;
# xen-suite.sh puts it there); it runs again in a bash of its own (below) with that
# script's check/pass/fail, wait_key, be_dir/fe_dir, count_domu, xl_clean ..., and its
# checks count in the suite's totals. Its own names start with hx_ / HX_.
#
# A guest writes its frontend directory (device/vusb/<devid> and its `state`), so pvusbd
# must take every value there as hostile; the toolstack's backend directory is checked the
# same way (spec D.2, D.3). Controllers used here:
#   G  guest3's controller 0 (usbctrl= in its config): well behaved, a sourcesink and a
#      storage on it; its data checks must keep passing while the others are attacked.
#   F  a controller whose frontend is domain 0 itself (backend/vusb/0/7): dom0 has no
#      xen-hcd, so this script alone plays its frontend and writes every bad value there
#      (ring references, event channel, state), each after a reset to Initialising.
#   H  a second controller of guest3 (xl usbctrl-attach), served by the real xen-hcd: the
#      cases that need real grants (a bound or unallocated event channel, a conn ring
#      reference that does not map after the urb ring did, flapping states with good
#      values, keys removed while connected, a garbage state while connected). xen-hcd
#      removes its host controller on every backend Closing it sees, so each H round
#      gets at most one Closing and a fresh controller (detach + attach) afterwards.
#   backend/vusb/0/20.. : backend directories with bad num-ports, usb-ver, frontend-id,
#      frontend: pvusbd must refuse them (no controller, state left at 1: D.3 step 2).
# What every case asserts: the same pvusbd pid, one log line naming the bad key, the
# backend state D.3 gives (InitWait after a reset, Closing on a refusal, Closed when the
# frontend closes or its state is absent/garbage; a bad backend directory never leaves
# state 1), pvusbd's gntdev mappings and open files (gntdev and evtchn handles) exactly as
# before the case, and for H its event channel in guest3 no longer bound (lsevtchn).

# This machine now and then crashes an ordinary dom0 process (see count_domu in the dom0
# script), the suite's own shell included, more often the more processes run. So this
# section runs in a bash of its own (a crash there ends only this section, and the suite
# still reports), its results are added to the suite's counts from /tmp/hx-results, the
# helpers count with bash built-ins, and observations are measured a second time before
# a check fails.
if [ -z "${HX_CHILD:-}" ]; then
    { declare -p pat_md5 head_md5 CHECK_LIMIT; declare -f; } >/tmp/hx-env.sh
    : >/tmp/hx-results
    echo 'set -uo pipefail; set -m; . /lib/xen-test.sh; . /tmp/hx-env.sh; . /root/xen-suite-hostile.sh' \
        >/tmp/hx-child.sh
    HX_CHILD=1 bash /tmp/hx-child.sh </dev/null &
    hx_pid=$!
    wait "$hx_pid"
    hx_rc=$?
    while read -r hx_r; do
        case $hx_r in P) PASS=$((PASS + 1)) ;; F) FAILN=$((FAILN + 1)) ;; esac
    done </tmp/hx-results
    hx_step=""; read -r hx_step </tmp/suite-step
    [ "$hx_rc" = 0 ] || fail "hostile section: its bash ended early (rc=$hx_rc) in or after: $hx_step"
    return 0
fi
# In the section's own bash: every result also goes to /tmp/hx-results.
pass() { PASS=$((PASS + 1)); echo "XEN-SUITE: PASS $*"; echo P >>/tmp/hx-results; }
fail() { FAILN=$((FAILN + 1)); echo "XEN-SUITE: FAIL $*"; echo F >>/tmp/hx-results; }
PASS=0 FAILN=0

hx_t0=$(xt_now)
HX_PID=$(pvusbd_pid)
HX_LOG=/tmp/pvusbd.log
HX_LSEVTCHN=$(ls /usr/lib/xen-*/bin/lsevtchn 2>/dev/null | head -n 1)
echo "XEN-SUITE: ---- hostile xenstore values (pvusbd pid $HX_PID)"

# The longest value xenstored takes here (oxenstored's quota-maxsize, 2048 by default,
# binds dom0 too): 4000 characters if it can, else 2000.
HX_HUGE=$(printf '9%.0s' $(seq 4000))
xenstore-write /local/domain/0/pvusb-hx-probe "$HX_HUGE" 2>/dev/null || HX_HUGE=${HX_HUGE:0:2000}
xenstore-rm /local/domain/0/pvusb-hx-probe 2>/dev/null
HX_HUGE_A=${HX_HUGE//9/a}
echo "XEN-SUITE: long values are ${#HX_HUGE} characters"

hx_alive() { local c=""; read -r c <"/proc/$HX_PID/comm" 2>/dev/null; [ "$c" = pvusbd ]; }
# HX_RES: pvusbd's gntdev mappings and open file descriptors (gntdev, evtchn, ...).
hx_res_get() {
    local l m=0
    local -a fd
    while IFS= read -r l; do [[ $l == *gntdev* ]] && m=$((m + 1)); done <"/proc/$HX_PID/maps"
    fd=("/proc/$HX_PID/fd/"*)
    HX_RES="gntdev-maps=$m fds=${#fd[@]}"
}
# pvusbd's log, read with `read`, which drops NUL bytes where mapfile would cut the line
# (this machine now and then zeroes a few bytes of a file). HX_LINES: the lines after the
# first $1 (default 0).
hx_log() {
    local l n=0
    HX_LINES=()
    while IFS= read -r l || [ -n "$l" ]; do
        n=$((n + 1))
        [ "$n" -gt "${1:-0}" ] && HX_LINES+=("$l")
    done <"$HX_LOG"
}
# Before a case: HX_L0 = lines in pvusbd's log, HX_R0 = its resources.
hx_mark() {
    hx_log
    HX_L0=${#HX_LINES[@]}
    hx_res_get
    HX_R0=$HX_RES
}
hx_count() { # L0 TEXT: HX_N = new log lines containing TEXT
    local l
    hx_log "$1"
    HX_N=0
    for l in "${HX_LINES[@]}"; do [[ $l == *"$2"* ]] && HX_N=$((HX_N + 1)); done
}
hx_newlog() { hx_log "$HX_L0"; printf '    %.300s\n' "${HX_LINES[@]}" >&2; }
hx_once() { # TEXT [OTHER [N]]: exactly one new line with TEXT, N (1) with OTHER
    local n
    hx_count "$HX_L0" "$1"; n=$HX_N
    hx_count "$HX_L0" "${2:-$1}"
    [ "$n" = 1 ] && [ "$HX_N" = "${3:-1}" ] && return 0
    echo "log: $n new lines with '$1' (want 1), $HX_N with '${2:-$1}' (want ${3:-1}); new lines:" >&2
    hx_newlog
    return 1
}
hx_none() { # TEXT: no new line with it
    hx_count "$HX_L0" "$1"
    [ "$HX_N" = 0 ] && return 0
    echo "log: $HX_N new lines with '$1':" >&2; hx_newlog
    return 1
}
hx_wait_log() { # TEXT SECONDS: until a new line has TEXT
    local end=$(( ${EPOCHREALTIME/./} + $2 * 1000000 ))
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        hx_count "$HX_L0" "$1"
        [ "$HX_N" -ge 1 ] && return 0
        sleep 0.2
    done
    echo "log: no new line with '$1' within $2 s" >&2
    return 1
}
hx_same() { # RES: the same pvusbd, holding what it held in RES (measured up to 3 times)
    local i
    for i in 1 2 3; do
        hx_alive || { echo "pvusbd $HX_PID is gone" >&2; return 1; }
        hx_res_get
        [ "$HX_RES" = "$1" ] && return 0
        sleep 0.3
    done
    echo "pvusbd held '$1', now '$HX_RES'" >&2
    return 1
}
hx_show() { # HX_SHOW: a value as a check's name shows it
    if [ ${#1} -gt 40 ]; then HX_SHOW="<${#1} chars>"; else HX_SHOW="'$1'"; fi
}
# An event channel of a domain, as lsevtchn prints it, must match REGEX.
hx_port_is() { # DOMID PORT REGEX
    local s i
    for i in 1 2 3; do
        s=$("$HX_LSEVTCHN" "$1" 2>/dev/null | grep -aE "^ *$2: ")
        [[ $s =~ $3 ]] && return 0
        sleep 0.3
    done
    echo "event channel $2 of domain $1 is '$s', wanted /$3/" >&2
    return 1
}
HX_BOUND='Interdomain \(Connected\) - Remote Domain 0,'
HX_UNBOUND='Interdomain \(Waiting connection\) - Remote Domain 0$'
hx_read() { # VAR PATH: a xenstore value, read up to 3 times
    local i v
    for i in 1 2 3; do v=$(xenstore-read "$2" 2>/dev/null) && break; v=""; done
    printf -v "$1" '%s' "$v"
}
hx_listed() { # FRONTEND DEVID
    local out
    out=$(pvusb --json usb-list "$1" 2>/dev/null)
    out=${out//[[:space:]]/}
    [[ $out == *"\"controller\":$2,"* ]]
}
hx_not_listed() { # FRONTEND DEVID: pvusb answers (a JSON list) without that controller
    local out
    out=$(pvusb --json usb-list "$1" 2>/dev/null) || return 1
    out=${out//[[:space:]]/}
    [[ $out == \[*\] && $out != *"\"controller\":$2,"* ]]
}
# Observation checks (no action: they only look) are measured again when they fail: up
# to 3 times when the check's own process crashed or wedged (rc >= 128; a wedged process
# is killed after HX_LIMIT seconds, 45 unless the caller sets it), twice otherwise; a
# real failure fails every time. Output as check's.
hx_run() {
    local pid w rc
    ( "$@" ) &
    pid=$!
    ( sleep "${HX_LIMIT:-45}" && echo "check '$CUR': killed after ${HX_LIMIT:-45} s" >&2 &&
      kill -9 -- -"$pid" ) 2>/dev/null &
    w=$!
    wait "$pid"; rc=$?
    kill -- -"$w" 2>/dev/null; wait "$w" 2>/dev/null
    return "$rc"
}
hx_check() { # NAME CMD...
    local i rc plain=0
    CUR=$1
    shift
    echo "$CUR" >/tmp/suite-step
    for i in 1 2 3; do
        hx_run "$@"; rc=$?
        [ "$rc" = 0 ] && { pass "$CUR"; return 0; }
        if [ "$rc" -lt 128 ]; then
            plain=$((plain + 1))
            [ "$plain" -ge 2 ] && break
        fi
        echo "    (rc=$rc; measuring again)" >&2
    done
    fail "$CUR"
}
# Writes are repeated once if xenstore-write itself failed (they are idempotent here).
hx_xsw() { xenstore-write "$@" 2>/dev/null || xenstore-write "$@"; }
hx_xsrm() { xenstore-rm "$1" 2>/dev/null || ! xenstore-read "$1" >/dev/null 2>&1 || xenstore-rm "$1"; }

# ---------------------------------------------------------------- G: the good controller
check "hostile: xl create guest3 with usbctrl=['type=pv,version=2,ports=4']" \
    start_domu guest3 "type=pv,version=2,ports=4" /root/domu.sh
wait_domu_log '^PVUSB-DOMU: xen-hcd loaded' 120 guest3
HX_D=$(domu_id guest3)
HX_GFE=$(fe_dir "$HX_D" 0) HX_GBE=$(be_dir "$HX_D" 0)
HX_LIMIT=70 hx_check "hostile: guest3's good controller G connected" wait_key "$HX_GBE/state" '^4$' 60
hx_read HX_PG "$HX_GFE/event-channel"
hx_check "hostile: G's event channel $HX_PG is bound to dom0" hx_port_is "$HX_D" "$HX_PG" "$HX_BOUND"
# Data on G while F is attacked: guest3 tests each device as it appears.
pvusb usbdev-attach guest3 sourcesink controller=0 port=1
pvusb usbdev-attach guest3 storage:/root/disk.img controller=0 port=2

# ---------------------------------------------------------------- F: frontend values
HXF=7
HXF_BE=$(be_dir 0 $HXF) HXF_FE=$(fe_dir 0 $HXF)
# The backend and frontend directories as libxl writes them, in one transaction;
# KEY VALUE pairs replace backend keys.
hx_ctrl_write() { # DEVID [KEY VALUE]...
    local id=$1 be fe k
    be=$(be_dir 0 "$id") fe=$(fe_dir 0 "$id")
    shift
    local -A kv=([frontend]="$fe" [frontend-id]=0 [online]=1 [state]=1 [type]=pv
                 [usb-ver]=2 [num-ports]=2 [port/1]="" [port/2]="")
    while [ $# -ge 2 ]; do kv[$1]=$2; shift 2; done
    local args=()
    for k in "${!kv[@]}"; do args+=("$be/$k" "${kv[$k]}"); done
    hx_xsw -- "${args[@]}" "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1
}
hx_ctrl_rm() { hx_xsrm "$(be_dir 0 "$1")"; hx_xsrm "$(fe_dir 0 "$1")"; }

hx_ctrl_write $HXF
hx_check "hostile F: backend/vusb/0/$HXF (its frontend is dom0's) goes to InitWait" wait_key "$HXF_BE/state" '^2$' 20
hx_check "hostile F: pvusbd lists it" hx_listed Domain-0 $HXF
# Back to Initialising with well-formed ring values (grants dom0 never gave itself).
hx_f_reset() {
    hx_xsw -- "$HXF_FE/urb-ring-ref" 8 "$HXF_FE/conn-ring-ref" 9 "$HXF_FE/event-channel" 5 \
        "$HXF_FE/state" 1
    wait_key "$HXF_BE/state" '^2$' 20
}
hx_f_refused() { # REASON: backend Closing, one log line, nothing left behind
    wait_key "$HXF_BE/state" '^5$' 20 && hx_once "frontend $HXF_FE refused: $1" refused && hx_same "$HX_R0"
}
hx_f_case() { # KEY VALUE REASON ("<absent>" removes KEY)
    hx_f_reset
    hx_mark
    if [ "$2" = "<absent>" ]; then
        hx_xsrm "$HXF_FE/$1"
        hx_xsw "$HXF_FE/state" 4
    else
        hx_xsw -- "$HXF_FE/$1" "$2" "$HXF_FE/state" 4
    fi
    hx_show "$2"
    hx_check "hostile F: $1=$HX_SHOW refused (Closing, '$3' logged once, same pid, nothing left)" hx_f_refused "$3"
}
hx_f_quiet() { # STATE_REGEX: nothing new logged, backend state unchanged
    sleep 1
    hx_none refused && wait_key "$HXF_BE/state" "$1" 1
}
hx_res_get
HX_R_IDLE1=$HX_RES # G connected and one idle controller (F): what H leaves when disconnected
echo "XEN-SUITE: pvusbd with G connected and F idle: $HX_RES"
for v in abc "" -1 0x10 " 5" "5 " 99999999999999999999 4294967296 "$HX_HUGE"; do
    hx_f_case urb-ring-ref "$v" "urb-ring-ref is not a grant reference"
    if [ "$v" = abc ]; then
        hx_mark
        hx_xsw "$HXF_FE/state" 4
        hx_check "hostile F: a refused frontend writing state 4 again is not read again (no log, still Closing)" \
            hx_f_quiet '^5$'
    fi
done
hx_f_case urb-ring-ref "<absent>" "urb-ring-ref is missing"
for v in abc "" " 5" 99999999999999999999 "$HX_HUGE_A"; do
    hx_f_case conn-ring-ref "$v" "conn-ring-ref is not a grant reference"
done
hx_f_case conn-ring-ref "<absent>" "conn-ring-ref is missing"
for v in abc "" -1 0 131072 "$HX_HUGE"; do
    hx_f_case event-channel "$v" "event-channel is not a port number"
done
hx_f_case event-channel "<absent>" "event-channel is missing"
hx_f_case conn-ring-ref 8 "urb-ring-ref and conn-ring-ref are the same grant 8"
hx_f_case urb-ring-ref 12345 "cannot map urb-ring-ref grant 12345 of domain 0"

# Nonsense in the frontend's state: taken as a frontend gone (Closed), said once.
hx_f_state_ok() {
    wait_key "$HXF_BE/state" '^6$' 20 &&
        hx_once "frontend $HXF_FE refused: state is not a xenbus state" refused && hx_same "$HX_R0"
}
for v in 9 abc "" -1 "$HX_HUGE"; do
    hx_f_reset
    hx_mark
    hx_xsw -- "$HXF_FE/state" "$v"
    hx_show "$v"
    hx_check "hostile F: state=$HX_SHOW -> Closed, 'state is not a xenbus state' logged once, nothing left" hx_f_state_ok
done
hx_mark
hx_xsw "$HXF_FE/state" xyz
hx_check "hostile F: more state garbage is not logged again (still Closed)" hx_f_quiet '^6$'
# Flapping faster than pvusbd answers: it ends Closed with nothing held.
hx_f_flapped() { wait_key "$HXF_BE/state" '^6$' 20 && sleep 1 && wait_key "$HXF_BE/state" '^6$' 1 && hx_same "$HX_R0"; }
hx_f_reset
hx_mark
for s in 1 3 1 4 6; do hx_xsw "$HXF_FE/state" $s; done
hx_check "hostile F: state flapping 1-3-1-4-6 ends Closed, same pid, nothing left" hx_f_flapped
hx_check "hostile F: back to Initialising -> InitWait again" hx_f_reset
hx_ctrl_rm $HXF
sleep 1
hx_check "hostile F: removed by the toolstack, pvusbd lists it no more" hx_not_listed Domain-0 $HXF

HX_LIMIT=250 hx_check "hostile: G's sourcesink data verified while F was attacked" \
    wait_count '^PVUSB-DOMU: sourcesink rc=0' 1 guest3 240
wait_domu_log '^PVUSB-DOMU: storage ' 120 guest3
hx_line=$(domu_lines '^PVUSB-DOMU: storage ' guest3 | tail -n 1)
echo "XEN-SUITE: guest3 $hx_line"
hx_check "hostile: G's storage read/write verified while F was attacked" \
    grep -q "wrote-md5 $pat_md5 reread-md5 $pat_md5" <<<"$hx_line"

echo "XEN-SUITE: hostile: G and F done after $(xt_since "$hx_t0") s"
# ---------------------------------------------------------------- backend directory values
hx_be_refused() { # REASON
    hx_wait_log "backend $HX_BE: $1; no controller made" 10 &&
        hx_once "backend $HX_BE: $1; no controller made" 'no controller made' &&
        wait_key "$HX_BE/state" '^1$' 1 && hx_not_listed Domain-0 "$HX_ID" && hx_same "$HX_R0"
}
hx_be_quiet() { sleep 0.5; hx_once 'no controller made' && wait_key "$HX_BE/state" '^1$' 1; }
hx_dev=20
hx_be_case() { # KEY VALUE REASON
    HX_ID=$hx_dev HX_BE=$(be_dir 0 $hx_dev)
    hx_dev=$((hx_dev + 1))
    hx_mark
    hx_ctrl_write "$HX_ID" "$1" "$2"
    hx_show "$2"
    hx_check "hostile backend: $1=$HX_SHOW refused ('$3' logged once, state left at 1, no controller)" \
        hx_be_refused "$3"
    if [ "$HX_ID" = 20 ]; then
        hx_xsw "$HX_BE/port/1" "" "$HX_BE/online" 1 "$HX_BE/state" 1
        hx_check "hostile backend: later writes in a refused backend directory log nothing more" hx_be_quiet
    fi
    hx_ctrl_rm "$HX_ID"
}
for v in 0 32 abc "" -1 "$HX_HUGE"; do hx_be_case num-ports "$v" "num-ports must be 1..31"; done
for v in 7 0 3 abc; do hx_be_case usb-ver "$v" "usb-ver must be 1 or 2"; done
hx_be_case frontend-id abc "frontend-id is not 0"
hx_be_case frontend-id 1 "frontend-id is not 0"
hx_be_case frontend "/local/domain/$HX_D/device/vusb/0" "frontend is not /local/domain/0/device/vusb/$hx_dev"
# The same devid made again with good values works: a removed bad directory is forgotten.
hx_be_good() { wait_key "$(be_dir 0 20)/state" '^2$' 20 && hx_listed Domain-0 20; }
hx_ctrl_write 20
hx_check "hostile backend: vusb/0/20 re-created with good values -> InitWait, listed" hx_be_good
hx_ctrl_rm 20
sleep 1
hx_check "hostile backend: and removed again" hx_not_listed Domain-0 20

# A long device name written into one of G's ports by the toolstack.
hx_port_long() {
    hx_wait_log 'port 3: device name in xenstore too long; ignored' 10 && sleep 0.5 &&
        hx_once 'port 3: device name in xenstore too long; ignored' && wait_key "$HX_GBE/state" '^4$' 1
}
hx_mark
hx_xsw "$HX_GBE/port/3" "$HX_HUGE_A"
hx_check "hostile backend: a ${#HX_HUGE_A}-char port/3 on G is ignored, logged once, G stays Connected" hx_port_long
hx_xsw "$HX_GBE/port/3" ""

echo "XEN-SUITE: hostile: backend values done after $(xt_since "$hx_t0") s"
# ---------------------------------------------------------------- H: real grants
hx_res_get
HX_R_BASE=$HX_RES # G connected, nothing else (each controller holds one wake eventfd)
echo "XEN-SUITE: pvusbd with G alone: $HX_R_BASE"
hx_round=0
hx_h_connected() { wait_key "$HX_HFE/state" '^4$' 30 && wait_key "$HX_HBE/state" '^4$' 30; }
hx_h_attach() { # a fresh H, connected; sets HX_H, HX_HBE, HX_HFE, HX_E (HX_H empty: none)
    local i
    hx_round=$((hx_round + 1))
    HX_H=""
    check "hostile H$hx_round: xl usbctrl-attach guest3 type=pv version=2 ports=2" \
        xl_clean usbctrl-attach guest3 type=pv version=2 ports=2
    for i in 1 2 3; do
        HX_H=$(xenstore-list "/local/domain/0/backend/vusb/$HX_D" 2>/dev/null | grep -vx 0 | tail -n 1)
        [[ $HX_H =~ ^[1-9][0-9]*$ ]] && break
        HX_H=""
    done
    if [ -z "$HX_H" ]; then fail "hostile H$hx_round: no second controller of guest3 in xenstore"; return 1; fi
    HX_HBE=$(be_dir "$HX_D" "$HX_H") HX_HFE=$(fe_dir "$HX_D" "$HX_H")
    hx_check "hostile H$hx_round: controller $HX_H connected (frontend 4, backend 4)" hx_h_connected
    hx_read HX_E "$HX_HFE/event-channel"
    hx_res_get
    echo "XEN-SUITE: H$hx_round: event-channel $HX_E; pvusbd: $HX_RES"
}
hx_h_unbound() { hx_port_is "$HX_D" "$HX_E" "$HX_UNBOUND"; }
hx_h_released() { hx_same "$HX_R_IDLE1" && hx_h_unbound; }
# The frontend starts over (state 1): pvusbd lets go of H and waits (InitWait). xen-hcd
# ignores a backend InitWait while it is connected, so its grants stay valid.
hx_h_reset_ok() { wait_key "$HX_HBE/state" '^2$' 20 && hx_h_released; }
hx_h_refused() { # REASON: refused (Closing); xen-hcd answers with Closed
    wait_key "$HX_HBE/state" '^6$' 20 && hx_once "frontend $HX_HFE refused: $1" refused && hx_h_released
}
hx_h_gone() { no_key "$HX_HBE" && hx_not_listed guest3 "$HX_H" && hx_same "$HX_R_BASE"; }
hx_h_detach() {
    [ -n "$HX_H" ] || return 0
    check "hostile H$hx_round: xl usbctrl-detach guest3 $HX_H (clean)" xl_clean usbctrl-detach guest3 "$HX_H"
    sleep 0.5
    hx_check "hostile H$hx_round: its backend directory gone, pvusbd holds nothing for it" hx_h_gone
}
hx_h_case() { # NAME KEY VALUE REASON
    hx_h_attach || return
    hx_xsw "$HX_HFE/state" 1
    hx_check "hostile H$hx_round: frontend back to 1 -> InitWait, H's rings unmapped, its channel unbound" hx_h_reset_ok
    hx_mark
    hx_xsw -- "$HX_HFE/$2" "$3" "$HX_HFE/state" 4
    hx_check "hostile H$hx_round: $1 refused ('$4' logged once, backend ends Closed, nothing left)" hx_h_refused "$4"
    hx_h_detach
}

# H1: ring keys removed while connected are not read again, so H keeps working; then its
# state removed: the frontend is gone (Closed), pvusbd lets go.
hx_h1_quiet() { wait_key "$HX_HBE/state" '^4$' 1 && hx_none refused && hx_none 'frontend disconnected'; }
hx_h1_closed() {
    wait_key "$HX_HBE/state" '^6$' 20 && hx_h_released && hx_none refused && hx_once "frontend disconnected"
}
if hx_h_attach; then
    hx_tab=$(count_domu '^PVUSB-DOMU: add [^ ]+ 1209:7501' guest3)
    hx_mark
    hx_xsrm "$HX_HFE/urb-ring-ref"
    hx_xsrm "$HX_HFE/conn-ring-ref"
    hx_xsrm "$HX_HFE/event-channel"
    pvusb usbdev-attach guest3 tablet controller="$HX_H" port=1
    HX_LIMIT=70 hx_check "hostile H1: ring keys removed while connected: H still works (tablet enumerated)" \
        wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7501' $((${hx_tab:-0} + 1)) guest3 60
    hx_check "hostile H1: ... backend still Connected, nothing logged" hx_h1_quiet
    pvusb usbdev-detach guest3 "$HX_H" 1
    wait_count '^PVUSB-DOMU: remove [^ ]+ 1209:7501' $((${hx_tab:-0} + 1)) guest3 60
    hx_mark
    hx_xsrm "$HX_HFE/state"
    hx_check "hostile H1: state removed while connected -> Closed, rings unmapped, channel unbound, no refusal" hx_h1_closed
    hx_h_detach
fi

# H2: good values, flapping states: every connect and disconnect balanced, no refusal.
hx_h2_closed() { wait_key "$HX_HBE/state" '^6$' 20 && sleep 1 && hx_h_released && hx_none refused; }
hx_h2_connected() { wait_key "$HX_HBE/state" '^4$' 20 && hx_none refused && hx_port_is "$HX_D" "$HX_E" "$HX_BOUND"; }
if hx_h_attach; then
    hx_mark
    for s in 1 3 1 4 6; do hx_xsw "$HX_HFE/state" $s; done
    hx_check "hostile H2: state flapping 1-3-1-4-6 with good values ends Closed, no refusal, nothing left" hx_h2_closed
    hx_mark
    for i in 1 2 3 4 5 6 7 8 9 10; do hx_xsw "$HX_HFE/state" 1; hx_xsw "$HX_HFE/state" 4; done
    hx_check "hostile H2: 10 quick reconnects (1-4) end Connected and bound, no refusal" hx_h2_connected
    hx_mark
    hx_xsw "$HX_HFE/state" 6
    hx_check "hostile H2: ... then Closed with nothing left" hx_h2_closed
    hx_h_detach
fi

# H3-H5: values that only fail against real grants and channels.
hx_h_case "event-channel = G's bound port $HX_PG" event-channel "$HX_PG" \
    "cannot bind event channel $HX_PG of domain $HX_D"
hx_check "hostile: G's event channel $HX_PG is still bound to dom0" hx_port_is "$HX_D" "$HX_PG" "$HX_BOUND"
hx_h_case "event-channel = 4000 (never allocated)" event-channel 4000 \
    "cannot bind event channel 4000 of domain $HX_D"
hx_h_case "conn-ring-ref = 30000 (never granted; the urb ring had mapped)" conn-ring-ref 30000 \
    "cannot map conn-ring-ref grant 30000 of domain $HX_D"

# H6: garbage state while connected: said once, let go (Closed).
hx_h6_closed() {
    wait_key "$HX_HBE/state" '^6$' 20 && hx_once "frontend $HX_HFE refused: state is not a xenbus state" refused &&
        hx_h_released
}
if hx_h_attach; then
    hx_mark
    hx_xsw "$HX_HFE/state" abc
    hx_check "hostile H6: state 'abc' while connected -> Closed, logged once, rings unmapped, channel unbound" hx_h6_closed
    hx_h_detach
fi

# H7: detached and attached again after all that, H works.
if hx_h_attach; then
    hx_kbd=$(count_domu '^PVUSB-DOMU: add [^ ]+ 1209:7502' guest3)
    check "hostile H7: usbdev-attach keyboard to the fresh H" pvusb usbdev-attach guest3 keyboard controller="$HX_H" port=2
    HX_LIMIT=70 hx_check "hostile H7: guest3 enumerates it: H works again" \
        wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7502' $((${hx_kbd:-0} + 1)) guest3 60
    hx_h_detach
fi

echo "XEN-SUITE: hostile: H done after $(xt_since "$hx_t0") s"
# ---------------------------------------------------------------- G still works
hx_g_connected() {
    wait_key "$HX_GBE/state" '^4$' 1 && hx_port_is "$HX_D" "$HX_PG" "$HX_BOUND" &&
        pvusb --json usb-list guest3 | tr -d ' \n' | grep -q '"controller":0,[^]]*"state":"connected"'
}
hx_check "hostile: G still connected, its channel bound" hx_g_connected
pvusb usbdev-detach guest3 0 1
wait_count '^PVUSB-DOMU: remove [^ ]+ 1209:7500' 1 guest3 60
pvusb usbdev-attach guest3 sourcesink controller=0 port=1
HX_LIMIT=250 hx_check "hostile: G's sourcesink data verified again after every attack" \
    wait_count '^PVUSB-DOMU: sourcesink rc=0' 2 guest3 240
check "hostile: xl destroy guest3 (clean)" xl_clean destroy guest3
sleep 1
hx_no_xen() { # pvusb answers, and with no xen controller
    local out
    out=$(pvusb --json usb-list 2>/dev/null) || return 1
    out=${out//[[:space:]]/}
    [[ $out == \[*\] && $out != *'"transport":"xen"'* ]]
}
hx_check "hostile: no controller left in pvusbd" hx_no_xen
hx_check "hostile: no grant maps left in pvusbd" no_gnt_maps
hx_check "hostile: pvusbd is the same process (pid $HX_PID) after every hostile value" hx_alive
echo "XEN-SUITE: hostile section took $(xt_since "$hx_t0") s: $PASS passed, $FAILN failed"
