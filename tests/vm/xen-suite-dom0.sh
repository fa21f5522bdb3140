#!/bin/bash
# The dom0 half of tests/vm/xen-suite.sh: pvusbd as the `vusb` backend of real libxl
# and the real xen-hcd in PV domUs. Each check prints "XEN-SUITE: PASS|FAIL <name>"; the
# last line is "XEN-SUITE: <n> passed, <m> failed". The domU side is /root/domu.sh
# (xen-suite-domu.sh), which reports what the domU's Linux enumerates.
set -uo pipefail
. /lib/xen-test.sh
# configfs gadget helpers (from the gadget machine); sourced first because it has a
# check() of its own, which ours below replaces.
. /lib/gadget.sh
usleep() { sleep "0.0$(printf '%05d' "$1")"; } # gadget.sh polls with busybox's usleep

PASS=0 FAILN=0
pass() { PASS=$((PASS + 1)); echo "XEN-SUITE: PASS $*"; }
fail() { FAILN=$((FAILN + 1)); echo "XEN-SUITE: FAIL $*"; }
# Each check runs in its own process group with a time limit: on this machine a process
# now and then wedges for good (see count_domu below), and a stuck check must fail alone
# instead of stopping the suite. Checks therefore change no shell variables.
set -m
CHECK_LIMIT=${CHECK_LIMIT:-300}
check() { # NAME CMD...: pass when CMD succeeds within CHECK_LIMIT seconds
    local name=$1 pid w rc; shift
    CUR=$name
    echo "$name" >/tmp/suite-step
    ( "$@" ) &
    pid=$!
    # (&&: a watchdog whose own sleep crashed must not kill the check)
    ( sleep "$CHECK_LIMIT" && echo "check '$name': killed after $CHECK_LIMIT s" >&2 &&
      kill -9 -- -"$pid" ) 2>/dev/null &
    w=$!
    wait "$pid"; rc=$?
    kill -- -"$w" 2>/dev/null; wait "$w" 2>/dev/null
    if [ "$rc" = 0 ]; then pass "$name"; else fail "$name"; fi
}
finish() {
    echo "===== pvusbd log ====="
    sed 's/^/[pvusbd] /' /tmp/pvusbd.log
    echo "XEN-SUITE: $PASS passed, $FAILN failed"
    [ "$FAILN" = 0 ]
    exit
}
wait_key() { # PATH VALUE_REGEX SECONDS
    local end=$(( ${EPOCHREALTIME/./} + $3 * 1000000 )) v
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        v=$(xenstore-read "$1" 2>/dev/null) && [[ $v =~ $2 ]] && return 0
        sleep 0.2
    done
    echo "wait_key: $1 is '$(xenstore-read "$1" 2>&1)', wanted /$2/ within $3 s" >&2
    return 1
}
no_key() { ! xenstore-read "$1" >/dev/null 2>&1; }
pvusbd_pid() { pgrep -x pvusbd; }
pvusbd_alive() { [ -n "$(pvusbd_pid)" ]; }
# Grant mappings pvusbd holds: gntdev mappings in its address space.
gnt_maps() { grep -c gntdev "/proc/$(pvusbd_pid)/maps" 2>/dev/null || true; }
no_gnt_maps() { local n; n=$(gnt_maps); [ "${n:-0}" = 0 ] || { echo "pvusbd still maps $n gntdev areas" >&2; return 1; }; }
listed() { pvusb usb-list "$1" 2>/dev/null | grep -q .; }
maps_live() { pvusb --json usb-list "$1" | grep -o '"maps-live": *[0-9]*' | grep -o '[0-9]*$' | head -n 1; }
# Run an xl command; it must succeed and print nothing alarming.
xl_clean() {
    local out rc
    out=$(xl "$@" 2>&1); rc=$?
    [ -z "$out" ] || printf '%s\n' "$out" | sed "s/^/    [xl $1] /"
    [ $rc -eq 0 ] && ! grep -qiE 'unable to remove|error|fail' <<<"$out"
}
be_dir() { echo "/local/domain/0/backend/vusb/$1/$2"; }
fe_dir() { echo "/local/domain/$1/device/vusb/$2"; }
log_has() { grep -qE -- "$1" /tmp/pvusbd.log; }

# With lazy FPU switching this machine (Xen PV under QEMU TCG) crashed or wedged ordinary
# dom0 processes, with no pvusbd and no USB at all; xen-vm.sh now boots Xen with eager FPU
# switching, which ended that. Every poll here still runs under `timeout` and is retried,
# so that one stuck process fails one check instead of the suite.
console() { echo "/var/log/xen/console/guest-$1.log"; }
count_domu() { # PATTERN NAME: lines of NAME's console matching PATTERN ("" if the grep died)
    timeout 10 grep -acE -- "$1" "$(console "$2")"
}
wait_count() { # PATTERN MIN NAME SECONDS: until at least MIN lines match
    local end=$(( ${EPOCHREALTIME/./} + $4 * 1000000 )) n
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
        n=$(count_domu "$1" "$3")
        [ -n "$n" ] && [ "$n" -ge "$2" ] && return 0
        sleep 0.5
    done
    echo "wait_count: /$1/ seen ${n:-?} times in $3's console, wanted $2 within $4 s" >&2
    return 1
}
wait_domu_log() { wait_count "$1" 1 "${3:-$DOMU}" "$2"; }
domu_lines() { timeout 10 grep -a -- "$1" "$(console "$2")" | tr -d '\r'; }

# A heartbeat, so that a stuck step shows what dom0 and pvusbd were doing; and the logs
# when the machine's time runs out (xen-dom0-init.sh sends TERM).
(last="" same=0; while sleep 20; do
    step=$(cat /tmp/suite-step 2>/dev/null)
    if [ "$step" = "$last" ]; then same=$((same + 1)); else same=0; last=$step; fi
    if [ "$same" = 3 ]; then # a minute on one step: show every process and where it waits
        echo "XEN-SUITE-HB: stuck after '$step'; processes:"
        ps -eo pid,ppid,stat,wchan:24,args --no-headers | grep -v ' \[' | sed 's/^/XEN-SUITE-HB:   /'
        ls -la /var/log/xen/console/ /root | sed 's/^/XEN-SUITE-HB:   /'
        for r in $(ps -eo pid=,stat= | awk '$2 ~ /^R/ { print $1 }'); do
            echo "XEN-SUITE-HB:   running $r: $(tr '\0' ' ' <"/proc/$r/cmdline") io: $(tr '\n' ' ' <"/proc/$r/io")"
            ls -la "/proc/$r/fd" 2>/dev/null | sed 's/^/XEN-SUITE-HB:     /'
        done
    fi
    p=$(pgrep -x pvusbd)
    echo "XEN-SUITE-HB: up $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg); pvusbd $p: $(grep -E '^(State|VmRSS|Threads):' "/proc/$p/status" 2>/dev/null | tr -s '\t\n ' ' ')"
done) &
HB=$!
trap 'echo "XEN-SUITE: FAIL killed (timeout) at: ${CUR:-?}"; FAILN=$((FAILN + 1)); finish' TERM
trap 'kill $HB 2>/dev/null' EXIT

# ---- pvusbd before any controller exists
mkdir -p /run/pvusb
# A state file: a restarted pvusbd (section 8) takes the emulated devices of xen
# controllers from it (xenstore's port/N names host devices only).
STATE=/tmp/pvusbd-state.json
pvusbd --state "$STATE" >/tmp/pvusbd.log 2>&1 &
for i in $(seq 50); do [ -S /run/pvusb/pvusbd.sock ] && break; sleep 0.1; done
check "pvusbd started and serves xenstore" log_has 'xen: serving vusb backends'

# A disk image with a known first 64 KiB, for the domU to read.
dd if=/dev/zero of=/root/disk.img bs=1M count=16 2>/dev/null
head -c 65536 /dev/urandom >/root/head.bin
dd if=/root/head.bin of=/root/disk.img conv=notrunc 2>/dev/null
head_md5=$(md5sum </root/head.bin | cut -d' ' -f1)
yes PVUSB-XEN-DOMU-PATTERN | head -c 65536 >/root/pat.bin
pat_md5=$(md5sum </root/pat.bin | cut -d' ' -f1)

# ---- 1. hot-added controller: xl usbctrl-attach on a running domain
start_domu guest1 "" /root/domu.sh || { fail "xl create guest1"; finish; }
wait_domu_log '^PVUSB-DOMU: xen-hcd loaded' 120 || { fail "guest1 loads xen-hcd"; finish; }
d1=$(domu_id guest1)
t0=$(xt_now)
check "xl usbctrl-attach guest1 type=pv version=2 ports=8" xl_clean usbctrl-attach guest1 type=pv version=2 ports=8
echo "XEN-SUITE: usbctrl-attach took $(xt_since "$t0") s"
be=$(be_dir "$d1" 0) fe=$(fe_dir "$d1" 0)
check "guest1: frontend Connected (4)" wait_key "$fe/state" '^4$' 30
check "guest1: backend Connected (4)" wait_key "$be/state" '^4$' 30
xl usb-list guest1
pvusb usb-list guest1
check "pvusb lists guest1's controller as xen, connected" \
    bash -c "pvusb --json usb-list guest1 | grep -q '\"transport\": *\"xen\"' && pvusb --json usb-list guest1 | grep -q '\"state\": *\"connected\"'"
check "controller found by domid $d1 too (attach)" pvusb usbdev-attach "$d1" keyboard controller=0 port=8
check "controller found by domid $d1 too (detach)" pvusb usbdev-detach "$d1" 0 8

# ---- 2. emulated devices enumerate in the domU through xen-hcd
check "usbdev-attach sourcesink" pvusb usbdev-attach guest1 sourcesink controller=0 port=1
check "usbdev-attach tablet" pvusb usbdev-attach guest1 tablet controller=0 port=2
check "usbdev-attach storage" pvusb usbdev-attach guest1 storage:/root/disk.img controller=0 port=3
check "domU enumerates sourcesink 1209:7500" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7500' 60
check "domU enumerates tablet 1209:7501" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7501' 60
check "domU enumerates storage 1209:7503" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7503' 60
check "domU: sourcesink bulk IN/OUT and control data verified" wait_domu_log '^PVUSB-DOMU: sourcesink rc=0' 180
wait_domu_log '^PVUSB-DOMU: storage ' 120
line=$(domu_lines '^PVUSB-DOMU: storage ' guest1 | tail -n 1)
echo "XEN-SUITE: $line"
check "domU reads what dom0 wrote to the image" grep -q "read-md5 $head_md5" <<<"$line"
check "domU reads back what it wrote" grep -q "wrote-md5 $pat_md5 reread-md5 $pat_md5" <<<"$line"
img_md5() { timeout 20 dd if=/root/disk.img bs=4096 skip=64 count=16 2>/dev/null | md5sum | cut -d' ' -f1; }
same_img() { local i; for i in 1 2 3; do [ "$(img_md5)" = "$pat_md5" ] && return 0; done; return 1; }
check "data the domU wrote is in dom0's image" same_img
domu_lines 'USBFS-CHECK' guest1 | sed 's/^/XEN-SUITE: /'
check "guest1: idle controller holds no buffer grant maps" test "$(maps_live guest1)" = 0

# ---- 3. hot-detach and hot-attach while the domU runs
check "usbdev-detach tablet (port 2)" pvusb usbdev-detach guest1 0 2
check "domU sees the tablet go" wait_domu_log '^PVUSB-DOMU: remove [^ ]+ 1209:7501' 60
# (the domid check's keyboard may or may not have been enumerated in its short life)
kbd=$(count_domu '^PVUSB-DOMU: add [^ ]+ 1209:7502' guest1)
check "usbdev-attach keyboard on port 2" pvusb usbdev-attach guest1 keyboard controller=0 port=2
check "domU enumerates the keyboard on port 2" \
    wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7502' $(( ${kbd:-0} + 1 )) guest1 60
# The toolstack's way: a name written to port/N attaches, "" detaches (spec D.4).
xenstore-write "$be/port/4" tablet
check "port/4 from xenstore attaches (tablet enumerated again)" \
    wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7501' 2 guest1 60
xenstore-write "$be/port/4" ""
check "port/4 cleared in xenstore detaches" \
    wait_count '^PVUSB-DOMU: remove [^ ]+ 1209:7501' 2 guest1 60
pvusb usb-list guest1

# ---- 4. xl usbctrl-detach with devices on it leaves dom0 clean
t0=$(xt_now)
check "xl usbctrl-detach guest1 0 (clean)" xl_clean usbctrl-detach guest1 0
echo "XEN-SUITE: usbctrl-detach took $(xt_since "$t0") s"
check "domU removed its controller" wait_domu_log 'vusb vusb-0: remove|USB bus 1 deregistered' 30
check "backend directory gone" no_key "$be"
sleep 1
check "pvusbd lists no controller for guest1" bash -c "! pvusb usb-list guest1 2>/dev/null | grep -q 'xen'"
check "no grant maps left in pvusbd after usbctrl-detach" no_gnt_maps
check "pvusbd logged 0 live grant maps" log_has 'grant maps live in pvusbd: 0$'
check "pvusbd still running" pvusbd_alive

# ---- 5. a second controller, then xl destroy with a device connected
check "xl usbctrl-attach guest1 again" xl_clean usbctrl-attach guest1 type=pv version=1 ports=2
devid=$(xenstore-list "/local/domain/0/backend/vusb/$d1" 2>/dev/null | tail -n 1)
check "guest1: second controller Connected" wait_key "$(fe_dir "$d1" "$devid")/state" '^4$' 30
check "usbdev-attach tablet on the USB 1.1 controller" pvusb usbdev-attach guest1 tablet controller="$devid" port=1
check "domU enumerates the tablet on it" wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7501' 3 guest1 60
t0=$(xt_now)
check "xl destroy guest1 (clean)" xl_clean destroy guest1
echo "XEN-SUITE: xl destroy took $(xt_since "$t0") s"
check "guest1's backend directories gone" no_key "/local/domain/0/backend/vusb/$d1"
sleep 1
check "pvusbd lists no controller for guest1 after destroy" bash -c "! pvusb usb-list guest1 2>/dev/null | grep -q 'xen'"
check "no grant maps left after xl destroy" no_gnt_maps
check "pvusbd still running after xl destroy" pvusbd_alive

# ---- 6. usbctrl= in the domain config: xl create waits for our InitWait
t0=$(xt_now)
check "xl create with usbctrl=['type=pv,version=2,ports=4']" start_domu guest2 "type=pv,version=2,ports=4" /root/domu.sh
echo "XEN-SUITE: xl create with usbctrl took $(xt_since "$t0") s"
# Attached while the guest still boots: the conn event must come when the rings connect.
check "usbdev-attach storage to guest2 before its frontend connects" \
    pvusb usbdev-attach guest2 storage:/root/disk.img controller=0 port=4
echo "XEN-SUITE: guest2's controller was '$(pvusb --json usb-list guest2 | grep -o '"state":"[a-z]*"' | head -n 1)' at that attach"
wait_domu_log '^PVUSB-DOMU: xen-hcd loaded' 120 guest2
d2=$(domu_id guest2)
check "guest2: frontend Connected" wait_key "$(fe_dir "$d2" 0)/state" '^4$' 60
check "guest2 controller has 4 ports" bash -c "pvusb --json usb-list guest2 | grep -q '\"ports\": *4'"
check "usbdev-attach sourcesink to guest2" pvusb usbdev-attach guest2 sourcesink controller=0 port=1
check "guest2 enumerates storage" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7503' 60 guest2
check "guest2: sourcesink data verified" wait_domu_log '^PVUSB-DOMU: sourcesink rc=0' 180 guest2
wait_domu_log '^PVUSB-DOMU: storage ' 120 guest2
line=$(domu_lines '^PVUSB-DOMU: storage ' guest2 | tail -n 1)
echo "XEN-SUITE: guest2 $line"
check "guest2 reads back what it wrote" grep -q "wrote-md5 $pat_md5 reread-md5 $pat_md5" <<<"$line"

# ---- 7. a real device: a dom0 dummy_hcd SourceSink gadget through pvusbd's libusb back-end
busid=""
if modprobe -a dummy_hcd libcomposite usb_f_ss_lb && gadget_sourcesink; then
    busid=$(gadget_port g1)
    echo "XEN-SUITE: dom0 SourceSink gadget at $busid"
    check "usbdev-attach the dom0 gadget $busid to guest2" pvusb usbdev-attach guest2 "$busid" controller=0 port=2
    check "guest2 enumerates the gadget 1d6b:0104" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1d6b:0104' 60 guest2
    check "guest2: gadget bulk IN/OUT data verified" wait_domu_log '^PVUSB-DOMU: gadget rc=0' 240 guest2
    domu_lines 'USBFS-CHECK' guest2 | tail -n 3 | sed 's/^/XEN-SUITE: /'
    gadget_unplug g1
    check "guest2 sees the gadget go on a physical unplug" \
        wait_domu_log '^PVUSB-DOMU: remove [^ ]+ 1d6b:0104' 60 guest2
    gadget_replug g1
    check "guest2 gets the gadget back after the replug" \
        wait_count '^PVUSB-DOMU: add [^ ]+ 1d6b:0104' 2 guest2 60
    check "guest2: gadget data verified again after the replug" \
        wait_count '^PVUSB-DOMU: gadget rc=0' 2 guest2 240
    xl usb-list guest2
    if [ "$(xenstore-read "$(be_dir "$d2" 0)/port/2")" = "$busid" ]; then
        # pvusb recorded the host device in port/2, so libxl knows it too.
        check "xl usb-list shows the gadget on port 2" bash -c "xl usb-list guest2 | grep -q 'Port 2: Bus 0*1 Device'"
        check "xl usbdev-detach guest2 0 2 (clean)" xl_clean usbdev-detach guest2 0 2
    else
        echo "XEN-SUITE: (port/2 not written by pvusb usbdev-attach; detaching with pvusb)"
        check "pvusb usbdev-detach the gadget" pvusb usbdev-detach guest2 0 2
    fi
    check "guest2 sees the detached gadget go" \
        wait_count '^PVUSB-DOMU: remove [^ ]+ 1d6b:0104' 2 guest2 60
    check "dom0 still has the gadget at $busid" test -e "/sys/bus/usb/devices/$busid/idVendor"
else
    fail "dom0 dummy_hcd SourceSink gadget could not be set up"
fi

# ---- 8. pvusbd restarts while guest2 runs with devices attached.
# A: kill -9 with nothing in flight, B: SIGTERM with a keyboard (which keeps an interrupt
# URB in flight), C: kill -9 with the keyboard. Each time the new pvusbd takes the rings
# over from the ring journal the old one kept in /run/pvusb/rings (B: the old one answered
# everything it took before it exited; C: the new one answers the keyboard's URB the dead
# one had in flight, once), announces every port empty and then its devices again, so the
# domU keeps its controller, enumerates them afresh and moves data. xen-hcd must see no
# protocol error (an id answered twice is one), and its teardown must not hang (it waits
# for every URB it put on the ring): xl detaches cleanly, no grants are left behind,
# devices go back to the host, the journal goes with the controller.
stop_pvusbd() { # SIGNAL PID: stop pvusbd with it and wait until it is gone
    local i
    [ -n "$2" ] || { echo "stop_pvusbd: no pvusbd" >&2; return 1; }
    kill -"$1" "$2"
    for i in $(seq 150); do [ -d "/proc/$2" ] || return 0; sleep 0.2; done
    echo "stop_pvusbd: pvusbd $2 still there after SIG$1" >&2
    return 1
}
pvusbd_answers() { local i; for i in $(seq 60); do timeout 10 pvusb usb-list >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
count() { # PATTERN NAME: like count_domu, retried when the grep died; 0 if it never ran
    local n i
    for i in 1 2 3; do n=$(count_domu "$1" "$2") && [ -n "$n" ] && { echo "$n"; return; }; done
    echo 0
}
log_count() { grep -cE -- "$1" /tmp/pvusbd.log; }
wait_log_count() { # PATTERN MIN SECONDS
    local i
    for i in $(seq $(($3 * 5))); do [ "$(log_count "$1")" -ge "$2" ] && return 0; sleep 0.2; done
    echo "wait_log_count: /$1/ seen $(log_count "$1") times in pvusbd's log, wanted $2" >&2
    return 1
}
iface_driver() { # the gadget's interface's kernel driver, "none" when unbound
    local l; l=$(readlink "/sys/bus/usb/devices/$busid:1.0/driver" 2>/dev/null) && echo "${l##*/}" || echo none
}
# gntdev areas of a pvusbd whose only connected controller is idle: its two ring pages. No
# request buffer is ever mapped (request data moves by grant copy), not even the held
# keyboard's interrupt URB ($kb).
sane_gnt_maps() { local n; n=$(gnt_maps); echo "pvusbd maps ${n:-?} gntdev areas"; [ -n "$n" ] && [ "$n" -ge 1 ] && [ "$n" -le 2 ]; }
RESUMED='resuming the rings an earlier pvusbd served'
NOT_RESUMED='cannot resume the rings an earlier pvusbd served'
be2=$(be_dir "$d2" 0) fe2=$(fe_dir "$d2" 0)
journal2=/run/pvusb/rings/$d2-0
answered_in_flight() { # what the last takeover answered for the dead process
    grep -o 'resuming the rings an earlier pvusbd served; [0-9]* request' /tmp/pvusbd.log | tail -n 1 | grep -o '[0-9]* request$' | grep -o '^[0-9]*'
}
hcd_errors() { count 'xen-hcd: protocol error|backend didn.t release grant' guest2; }
drv0="" kb=0
snapshot() { # the domU's counts before a restart
    n_ss=$(count '^PVUSB-DOMU: sourcesink rc=0' guest2)
    n_st=$(count '^PVUSB-DOMU: storage .*reread-md5 '"$pat_md5" guest2)
    n_kb=$(count '^PVUSB-DOMU: add [^ ]+ 1209:7502' guest2)
    n_g=$(count '^PVUSB-DOMU: gadget rc=0' guest2)
    n_bus=$(count 'USB bus [0-9]+ deregistered' guest2)
    n_res=$(log_count "$RESUMED") n_not=$(log_count "$NOT_RESUMED")
}
resumed_checks() { # LABEL: guest2 kept its controller and gets every device back
    local t=$1
    check "$t: guest2's frontend and backend still Connected" \
        bash -c "[ \"\$(xenstore-read $fe2/state)\" = 4 ] && [ \"\$(xenstore-read $be2/state)\" = 4 ]"
    check "$t: the new pvusbd keeps a ring journal of guest2's controller" test -f "$journal2"
    check "$t: guest2 enumerates the sourcesink again and moves data" \
        wait_count '^PVUSB-DOMU: sourcesink rc=0' $((n_ss + 1)) guest2 240
    check "$t: guest2 enumerates the storage again and reads back what it wrote" \
        wait_count '^PVUSB-DOMU: storage .*reread-md5 '"$pat_md5" $((n_st + 1)) guest2 240
    [ "$kb" = 0 ] || check "$t: guest2 enumerates the keyboard again" \
        wait_count '^PVUSB-DOMU: add [^ ]+ 1209:7502' $((n_kb + 1)) guest2 120
    if [ -n "$drv0" ]; then
        check "$t: guest2 gets the dom0 gadget back and moves data" \
            wait_count '^PVUSB-DOMU: gadget rc=0' $((n_g + 1)) guest2 240
        check "$t: the new pvusbd holds the gadget (interface on usbfs)" test "$(iface_driver)" = usbfs
    fi
    check "$t: guest2 kept its USB bus" test "$(count 'USB bus [0-9]+ deregistered' guest2)" = "$n_bus"
    check "$t: xen-hcd in guest2 saw no protocol error (no id answered twice, no grant kept)" \
        test "$(hcd_errors)" = 0
    pvusb usb-list guest2
    check "$t: guest2's controller holds no buffer grant maps (grant copy), keyboard URB in flight or not" \
        test "$(maps_live guest2)" = 0
    check "$t: the new pvusbd maps only guest2's two ring pages" sane_gnt_maps
}
restart() { # SIGNAL LABEL: restart pvusbd; "resumed" or "closed" on stdout
    local old; old=$(pvusbd_pid)
    snapshot
    check "$2: pvusbd stopped by SIG$1" stop_pvusbd "$1" "$old"
    check "$2: the old pvusbd is gone (nothing left holding its grants)" test ! -d "/proc/$old"
    # Started here, not in a check: a check that runs out of time has its whole process
    # group killed, and the daemon must not go with it.
    echo "===== pvusbd $old stopped by SIG$1; starting it again =====" >>/tmp/pvusbd.log
    pvusbd --state "$STATE" >>/tmp/pvusbd.log 2>&1 &
    check "$2: the new pvusbd answers" pvusbd_answers
    check "$2: the new pvusbd took guest2's controller over or closed it" \
        wait_log_count "$RESUMED|$NOT_RESUMED" $((n_res + n_not + 1)) 30
    grep -E "$RESUMED|$NOT_RESUMED|restored from the state file|refused" /tmp/pvusbd.log | tail -n 5 | sed 's/^/XEN-SUITE: /'
}
if [ -n "$busid" ] && [ -e "/sys/bus/usb/devices/$busid/idVendor" ]; then
    drv0=$(iface_driver)
    echo "XEN-SUITE: the gadget's interface driver before pvusb takes it: $drv0"
    check "usbdev-attach the dom0 gadget to guest2 port 2 again" \
        pvusb usbdev-attach guest2 "$busid" controller=0 port=2
    check "guest2 runs the gadget check again" wait_count '^PVUSB-DOMU: gadget rc=0' 3 guest2 240
fi
sleep 2 # let the domU's last transfers finish: A is the crash with nothing in flight
restart KILL "A (kill -9, idle)"
check "A: the new pvusbd resumed guest2's controller" wait_log_count "$RESUMED" $((n_res + 1)) 10
resumed_checks A
check "usbdev-attach keyboard to guest2 port 3" pvusb usbdev-attach guest2 keyboard controller=0 port=3
check "guest2 enumerates the keyboard" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7502' 60 guest2
check "guest2 holds the keyboard open (an interrupt URB always in flight)" \
    wait_domu_log '^PVUSB-DOMU: holding ' 60 guest2
kb=1
restart TERM "B (SIGTERM, keyboard)"
check "B: the new pvusbd resumed guest2's controller" wait_log_count "$RESUMED" $((n_res + 1)) 10
resumed_checks B
check "B: guest2 holds the keyboard open again" wait_count '^PVUSB-DOMU: holding ' 2 guest2 60
sleep 1
restart KILL "C (kill -9, keyboard)"
check "C: the new pvusbd resumed guest2's controller" wait_log_count "$RESUMED" $((n_res + 1)) 10
check "C: the keyboard's URB the dead pvusbd had in flight was answered" test "$(answered_in_flight)" -ge 1
resumed_checks C
check "C: guest2 holds the keyboard open again" wait_count '^PVUSB-DOMU: holding ' 3 guest2 60
check "no restart was refused or closed" test "$(log_count "$NOT_RESUMED|refused:")" = 0
check "pvusbd still running after the restarts" pvusbd_alive
domu_lines 'USB disconnect\|new .*USB device number\|xen_hcd\|protocol error' guest2 | tail -n 16 | sed 's/^/XEN-SUITE: guest2: /'
t0=$(xt_now)
check "xl usbctrl-detach guest2 0 after the restarts (clean)" xl_clean usbctrl-detach guest2 0
echo "XEN-SUITE: usbctrl-detach took $(xt_since "$t0") s"
check "guest2's backend directory gone" no_key "$be2"
check "guest2 removed its controller (its teardown did not hang)" \
    wait_count 'USB bus [0-9]+ deregistered' $((n_bus + 1)) guest2 60
check "the ring journal went with the controller" test ! -e "$journal2"
sleep 1
check "no grant maps left after the restarts and usbctrl-detach" no_gnt_maps
[ -z "$drv0" ] || check "the gadget's interface is back on its kernel driver ($drv0)" test "$(iface_driver)" = "$drv0"
check "xl usbctrl-attach guest2 after the restarts" xl_clean usbctrl-attach guest2 type=pv version=2 ports=2
check "guest2: the new controller Connected" wait_key "$fe2/state" '^4$' 60
check "usbdev-attach tablet to guest2's new controller" pvusb usbdev-attach guest2 tablet controller=0 port=1
check "guest2 enumerates the tablet" wait_domu_log '^PVUSB-DOMU: add [^ ]+ 1209:7501' 60 guest2

check "xl destroy guest2 (clean)" xl_clean destroy guest2
sleep 1
check "no controllers left in pvusbd" bash -c "! pvusb usb-list 2>/dev/null | grep -q xen"
check "no grant maps left at the end" no_gnt_maps
check "pvusbd still running at the end" pvusbd_alive
check "pvusbd logged no refused frontend" bash -c "! grep -q 'refused:' /tmp/pvusbd.log"
check "pvusbd's ring journals always agreed with its rings" bash -c "! grep -q 'record marked broken' /tmp/pvusbd.log"
if [ -f /root/xen-suite-hostile.sh ]; then . /root/xen-suite-hostile.sh; else fail "xen-suite-hostile.sh is not in dom0 (xen-suite.sh --file)"; fi
finish
