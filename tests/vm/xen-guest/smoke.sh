#!/bin/bash
# Smoke test of the Xen test machine, run in dom0 by:
#     tests/vm/xen-vm.sh --run tests/vm/xen-guest/smoke.sh
# 1. A PV domU boots the shared kernel with the busybox ramdisk and loads the real
#    xen-hcd.ko (checked on its console: the domU /init's "xen-hcd loaded" line, printed
#    when modprobe succeeds since xen-hcd has no init message, and the lsmod line).
# 2. `xl usbctrl-attach <dom> type=pv` with no backend: libxl writes the vusb backend and
#    frontend directories (spec D.1/D.2) and waits ~10 s for InitWait, then fails. The
#    layout is dumped and checked while it waits.
#    Measured: libxl then leaves that controller's backend, frontend and /libxl entries
#    in xenstore (state 1), so the next controller gets devid 1 and `xl destroy` later
#    prints "unable to remove device with path .../vusb/<domid>/0".
# 3. The same again, but this script plays the backend's xenstore part only (state 2, then
#    6 on teardown): xen-hcd must answer with urb-ring-ref, conn-ring-ref, event-channel
#    and state 4 (spec D.3 step 4), and remove its controller on detach. No ring is
#    mapped, so no URB can flow.
set -euo pipefail
. /lib/xen-test.sh

fail() { echo "SMOKE: FAIL: $*"; exit 1; }
xs_be() { echo "/local/domain/0/backend/vusb/$1/$2"; }
xs_fe() { echo "/local/domain/$1/device/vusb/$2"; }
wait_key() { # PATH VALUE_REGEX TRIES: one xenstore-read per ~0.1-0.2 s
    local i v
    for ((i = 0; i < $3; i++)); do
        v=$(xenstore-read "$1" 2>/dev/null) && [[ $v =~ $2 ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---- 1. domU with xen-hcd
t0=$(xt_now)
start_domu smoke
wait_domu_log '^PVUSB-DOMU: xen-hcd loaded' 120 || fail "xen-hcd did not load"
echo "SMOKE: xl create to 'xen-hcd loaded': $(xt_since "$t0") s"
wait_domu_log '^xen_hcd ' 10 || fail "xen_hcd missing from the domU's lsmod"
domid=$(domu_id smoke)
echo "SMOKE: domU smoke is domid $domid; xl list:"
xl list

# ---- 2. usbctrl-attach without a backend: the layout libxl writes, then its failure
be=$(xs_be "$domid" 0) fe=$(xs_fe "$domid" 0)
t1=$(xt_now)
xl usbctrl-attach smoke type=pv version=2 ports=8 >/tmp/attach1.log 2>&1 &
apid=$!
wait_key "$be/state" '^1$' 100 || fail "libxl did not write $be/state"
echo "SMOKE: backend directory while libxl waits for InitWait:"
xenstore-ls -f "$be"
echo "SMOKE: frontend directory:"
xenstore-ls -f "$fe"
for kv in frontend-id="$domid" online=1 state=1 type=pv usb-ver=2 num-ports=8 frontend="$fe" \
    port/1= port/8=; do
    k=${kv%%=*} want=${kv#*=}
    got=$(xenstore-read "$be/$k") || fail "missing $be/$k"
    [ "$got" = "$want" ] || fail "$be/$k is '$got', expected '$want'"
done
! xenstore-read "$be/port/9" >/dev/null 2>&1 || fail "$be/port/9 exists with ports=8"
[ "$(xenstore-read "$fe/backend")" = "$be" ] || fail "$fe/backend is not $be"
[ "$(xenstore-read "$fe/backend-id")" = 0 ] || fail "$fe/backend-id is not 0"
set +e
wait "$apid"; arc=$?
set -e
echo "SMOKE: xl usbctrl-attach without a backend: rc=$arc after $(xt_since "$t1") s; it said:"
sed 's/^/    /' /tmp/attach1.log
[ "$arc" -ne 0 ] || fail "usbctrl-attach succeeded with no backend"
sleep 1
echo "SMOKE: left in xenstore after the failed attach (backend, frontend, /libxl):"
xenstore-ls -f "/local/domain/0/backend/vusb/$domid" 2>&1 | sed 's/^/    /' || true
xenstore-ls -f "/local/domain/$domid/device/vusb" 2>&1 | sed 's/^/    /' || true
xenstore-ls -f "/libxl/$domid/device/vusb" 2>&1 | sed 's/^/    /' || true

# ---- 3. play the backend's xenstore part: InitWait, then Closed on teardown
# libxl may have left controller 0 behind; the new controller gets the next free id.
old_ids=$(xenstore-list "/local/domain/0/backend/vusb/$domid" 2>/dev/null | tr '\n' ' ' || true)
t2=$(xt_now)
xl usbctrl-attach smoke type=pv version=2 ports=8 >/tmp/attach2.log 2>&1 &
apid=$!
devid=""
for ((i = 0; i < 100; i++)); do
    for id in $(xenstore-list "/local/domain/0/backend/vusb/$domid" 2>/dev/null); do
        [[ " $old_ids " == *" $id "* ]] || devid=$id
    done
    [ -z "$devid" ] || break
    sleep 0.1
done
[ -n "$devid" ] || fail "the second usbctrl-attach created no backend directory"
be=$(xs_be "$domid" "$devid") fe=$(xs_fe "$domid" "$devid")
echo "SMOKE: second controller is devid $devid"
wait_key "$be/state" '^1$' 100 || fail "libxl did not write $be/state (second attach)"
xenstore-write "$be/state" 2
wait "$apid" || { sed 's/^/    /' /tmp/attach2.log; fail "usbctrl-attach failed although the backend reached InitWait"; }
echo "SMOKE: usbctrl-attach returned after $(xt_since "$t2") s once the backend said InitWait"
wait_key "$fe/state" '^4$' 100 || { xenstore-ls -f "$fe"; fail "xen-hcd did not reach Connected (4)"; }
echo "SMOKE: frontend after connect:"
xenstore-ls -f "$fe"
for k in urb-ring-ref conn-ring-ref event-channel; do
    v=$(xenstore-read "$fe/$k") || fail "xen-hcd did not write $fe/$k"
    [[ $v =~ ^[0-9]+$ ]] || fail "$fe/$k is '$v', not a number"
done
xl usb-list smoke
# xen-hcd registers its host controller (root hub) at probe time, before connecting.
wait_domu_log "vusb vusb-$devid: Xen USB2.0 Virtual Host Controller" 20 ||
    fail "no xen-hcd host controller vusb-$devid in the domU's log"

# Teardown: libxl writes online=0 and state=5 and waits for 6; xen-hcd goes to 6 itself.
(wait_key "$be/state" '^5$' 150 && wait_key "$fe/state" '^6$' 100 && xenstore-write "$be/state" 6) &
fake=$!
t3=$(xt_now)
xl usbctrl-detach smoke "$devid" || fail "usbctrl-detach failed"
wait "$fake" || true
echo "SMOKE: usbctrl-detach took $(xt_since "$t3") s"
! xenstore-read "$be/state" >/dev/null 2>&1 || fail "$be still exists after detach"
wait_domu_log "vusb vusb-$devid: remove" 20 || fail "xen-hcd did not remove vusb-$devid"

# Controller 0 from step 2 is still there at state 1 with no backend: expect xl destroy
# to print "unable to remove device" for it (and still destroy the domain).
t4=$(xt_now)
xl destroy smoke
echo "SMOKE: xl destroy took $(xt_since "$t4") s"
! xl domid smoke >/dev/null 2>&1 || fail "domain smoke still exists after xl destroy"
echo "SMOKE: PASS"
