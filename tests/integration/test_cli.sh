#!/bin/bash
# pvusb CLI against a real pvusbd with emulated devices: every command, the
# validation errors with their exact messages and exit codes, --json parsed
# back, state restore after kill -9, config files, socket access control.
# Usage: test_cli.sh PVUSBD PVUSB PVUSB-LSUSB EXAMPLES_DIR
set -u
PVUSBD=$1 CLI=$2 LSUSB=$3 EXAMPLES=$4
tmp=$(mktemp -d /tmp/pvusb-cli.XXXXXX)
export PVUSB_SOCKET=$tmp/pvusbd.sock
passed=0 failed=0 dpid=

cleanup() { [ -n "$dpid" ] && kill -9 "$dpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

# run CMD...: sets $rc, $out (stdout) and $err (stderr)
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
# expect RC STDERR-LINE CMD...: exit code and one exact line on stderr
expect() {
	local want_rc=$1 want_err=$2; shift 2
	run "$@"
	if [ "$rc" = "$want_rc" ] && { [ -z "$want_err" ] || grep -qxF -- "$want_err" "$tmp/err"; }; then ok
	else bad "$* -> rc $rc (want $want_rc), stderr: $err (want: $want_err)"; fi
}
p() { "$CLI" "$@"; }

start_daemon() {
	"$PVUSBD" -f -q -s "$PVUSB_SOCKET" --state "$tmp/state.json" --config-dir "$tmp/conf.d" "$@" \
		2>>"$tmp/pvusbd.log" &
	dpid=$!
	for _ in $(seq 200); do [ -S "$PVUSB_SOCKET" ] && p usb-list >/dev/null 2>&1 && return 0; sleep 0.025; done
	bad "pvusbd did not start"; return 1
}
stop_daemon() { kill "$dpid"; wait "$dpid" 2>/dev/null; dpid=; }
# the listing without its traffic counters, for comparisons
listing() { p usb-list --json | jq -S 'map(del(.requests, .responses, .refused, .inflight, ."maps-live", .state))'; }
port_dev() { p usb-list "$1" --json | jq -r --argjson c "$2" --argjson p "$3" \
	'.[] | select(.controller == $c) | ."port-list"[] | select(.port == $p) | .device // ""'; }

# ---- help and usage, no daemon needed ----
expect 0 "" p --help
cp "$tmp/out" "$tmp/help"
for c in usbctrl-attach usbctrl-detach usbdev-attach usbdev-detach usb-list \
	usb-list-assignable-devices apply usb-hc-create usb-hc-destroy usb-attach usb-detach; do
	check "--help lists $c" grep -q "^  $c " "$tmp/help"
	run p "$c" --help
	check "$c --help" test "$rc" = 0 -a "$(head -1 "$tmp/out" | cut -d' ' -f1-3)" = "Usage: pvusb $c"
done
expect 2 "pvusb: unknown command 'usb-frob'; see 'pvusb --help'" p usb-frob
expect 2 "" p
expect 3 "Is it running? Start it with 'pvusbd' (or 'systemctl start pvusbd')." p usb-list

mkdir -p "$tmp/conf.d"
start_daemon || exit 1

# ---- controllers ----
expect 0 "" p usbctrl-attach vm1
check "usbctrl-attach prints the devid" test "$out" = "controller 0"
run p --json usbctrl-attach vm1 version=1 ports=4
check "usbctrl-attach --json" test "$(jq .controller <<<"$out")" = 1
expect 2 "pvusb: version must be a decimal number 1..2, got '3'" p usbctrl-attach vm1 version=3
expect 2 "pvusb: ports must be a decimal number 1..31, got '32'" p usbctrl-attach vm1 ports=32
expect 2 "pvusb: ports '08' has a leading zero: numbers are decimal, not octal" p usbctrl-attach vm1 ports=08
expect 2 "pvusb: type must be pv or auto, got 'qusb' (qusb and devicemodel controllers are served by QEMU, not pvusbd)" \
	p usbctrl-attach vm1 type=qusb
expect 2 "pvusb: unexpected 'speed=3': usbctrl-attach takes type=, version=, ports=" p usbctrl-attach vm1 speed=3
expect 1 "pvusb: the domain name must be 1-63 of [A-Za-z0-9._-]" p usbctrl-attach 'vm/1'
check "usb-list --json shows two controllers" test "$(p usb-list vm1 --json | jq length)" = 2
check "usb-ver and ports as created" test "$(p usb-list vm1 --json | jq -c '[.[] | [."usb-ver", .ports, .transport]]')" = '[[2,8,"local"],[1,4,"local"]]'

# ---- devices: xl port choice ----
expect 0 "" p usbdev-attach vm1 tablet
check "no controller: first free port of the lowest devid" test "$out" = "attached to controller 0 port 1"
expect 0 "" p usbdev-attach vm1 keyboard controller=1
check "controller without port: its first free port" test "$out" = "attached to controller 1 port 1"
run p --json usbdev-attach vm1 sourcesink controller=0 port=5
check "explicit controller and port, --json" test "$(jq -c . <<<"$out")" = '{"controller":0,"port":5}'
check "usb-list shows the device on its port" test "$(port_dev vm1 0 5)" = sourcesink
check "usb-list shows speed and id" test "$(p usb-list vm1 --json | jq -r '.[0]."port-list"[4] | .speed + " " + .id')" = "high 1209:7500"
expect 1 "pvusb: port 5 of controller 0 already holds sourcesink" p usbdev-attach vm1 tablet controller=0 port=5
expect 2 "pvusb: port= needs controller= (as with xl)" p usbdev-attach vm1 tablet port=2
expect 2 "pvusb: port must be a decimal number 1..31, got '40'" p usbdev-attach vm1 tablet controller=0 port=40
expect 1 "pvusb: controller 0 of vm1 has ports 1..8" p usbdev-attach vm1 tablet controller=0 port=9
expect 1 "pvusb: vm1 has no controller 7 (see 'pvusb usb-list vm1')" p usbdev-attach vm1 tablet controller=7
expect 1 "pvusb: the device address '06' has a leading zero: numbers here are decimal, not octal; write 6" \
	p usbdev-attach vm1 1.06
expect 1 "pvusb: the bus number '01' has a leading zero: numbers here are decimal, not octal; write 1" \
	p usbdev-attach vm1 01-2
expect 1 "pvusb: unknown device 'mouse': expected a bus path (2-4.3.3), bus.address (1.6), vendor:product[:serial] (046d:c016), sourcesink, tablet, keyboard or storage:<image>" \
	p usbdev-attach vm1 mouse
expect 1 "pvusb: cannot attach sourcesink to port 2: a high-speed device cannot go on a USB 1.1 controller; use a version=2 controller" \
	p usbdev-attach vm1 sourcesink controller=1
expect 0 "" p usbdev-attach vm1 sourcesink:speed=full,pattern=0 controller=1
check "an emulated device's options (with '=') are part of its name" \
	test "$out|$(port_dev vm1 1 2)" = "attached to controller 1 port 2|sourcesink:speed=full,pattern=0"
expect 0 "" p usbdev-detach vm1 1 2
truncate -s 4M "$tmp/disk.img"
expect 0 "" p usbdev-attach vm1 "storage:$tmp/disk.img"
check "storage took the next free port" test "$out" = "attached to controller 0 port 2"
run p usbdev-attach vm2 "storage:$tmp/disk.img"
check "the same image twice is refused" test "$rc" = 1
check "a failed attach left vm2 without the controller it would have made" test "$(p usb-list vm2 --json | jq length)" = 0
# fill controller 0 (8 ports) and controller 1 (4 ports): the next one makes controller 2
for i in 1 2 3 4 5 6 7 8; do p usbdev-attach vm1 keyboard >/dev/null || bad "filling port $i"; done
run p usbdev-attach vm1 tablet
check "no free port anywhere: a new default controller" test "$out" = "attached to controller 2 port 1"
check "the new controller is USB 2.0 with 8 ports" test "$(p usb-list vm1 --json | jq -c '.[2] | [."usb-ver", .ports]')" = "[2,8]"

# ---- detach ----
expect 0 "" p usbdev-detach vm1 0 5
check "detached port is empty" test -z "$(port_dev vm1 0 5)"
expect 0 "" p usbdev-detach vm1 controller=0 port=2
expect 1 "pvusb: port 2 of controller 0 is empty" p usbdev-detach vm1 0 2
expect 2 "pvusb: port '02' has a leading zero: numbers are decimal, not octal" p usbdev-detach vm1 0 02
expect 1 "pvusb: vm1 has no controller 9 (see 'pvusb usb-list vm1')" p usbdev-detach vm1 9 1
expect 0 "" p usbctrl-detach vm1 2
expect 1 "pvusb: vm1 has no controller 2 (see 'pvusb usb-list vm1')" p usbctrl-detach vm1 2

# ---- xm names ----
expect 0 "" p usb-hc-create xm1 2 16
expect 2 "pvusb: ports (xm allows 1..16) must be a decimal number 1..16, got '17'" p usb-hc-create xm1 2 17
expect 2 "pvusb: usb-ver must be a decimal number 1..2, got '3'" p usb-hc-create xm1 3 4
expect 0 "" p usb-attach xm1 0 16 tablet
check "usb-attach put it on port 16" test "$(port_dev xm1 0 16)" = tablet
expect 2 "pvusb: port (xm allows 1..16) must be a decimal number 1..16, got '17'" p usb-attach xm1 0 17 tablet
expect 0 "" p usb-detach xm1 0 16
expect 0 "" p usb-hc-destroy xm1 0
check "usb-hc-destroy removed it" test "$(p usb-list xm1 --json | jq length)" = 0

# ---- assignable host devices: real ones only, no hubs, none assigned ----
run p --json usb-list-assignable-devices
check "usb-list-assignable-devices --json is an array" test "$(jq type <<<"$out")" = '"array"'
for b in $(jq -r '.[].busid' <<<"$out"); do
	check "$b exists and is no hub" test -e "/sys/bus/usb/devices/$b" -a "$(cat /sys/bus/usb/devices/$b/bDeviceClass 2>/dev/null)" != 09
done

# ---- restart after kill -9: same listing, same devices for a frontend ----
before=$(listing)
"$LSUSB" vm1 >"$tmp/lsusb.before" 2>&1 || bad "pvusb-lsusb before the restart"
kill -9 "$dpid"; wait "$dpid" 2>/dev/null; dpid=
start_daemon
check "after kill -9 the listing is identical" test "$(listing)" = "$before"
"$LSUSB" vm1 >"$tmp/lsusb.after" 2>&1 || bad "pvusb-lsusb after the restart"
check "a frontend enumerates the same devices on the same ports" cmp -s "$tmp/lsusb.before" "$tmp/lsusb.after"
check "pvusb-lsusb saw the tablet" grep -q "1209:7501" "$tmp/lsusb.after"

# a device that is gone while pvusbd is down stays assigned, shown as missing
p usbdev-attach vm3 "storage:$tmp/gone.img" 2>/dev/null && bad "storage on a missing image"
truncate -s 1M "$tmp/gone.img"
p usbdev-attach vm3 "storage:$tmp/gone.img" >/dev/null || bad "storage on gone.img"
stop_daemon
mv "$tmp/gone.img" "$tmp/away.img"
start_daemon
check "a device missing at start is kept as missing" test "$(p usb-list vm3 --json | jq -r '.[0]."port-list"[0].state')" = missing
mv "$tmp/away.img" "$tmp/gone.img"
for _ in $(seq 40); do [ "$(p usb-list vm3 --json | jq -r '.[0]."port-list"[0].state')" = attached ] && break; sleep 0.1; done
check "it is attached again when it appears" test "$(p usb-list vm3 --json | jq -r '.[0]."port-list"[0].state')" = attached

# ---- config files ----
cat >"$tmp/good.cfg" <<'CFG'
name = "cfgvm"
memory = 512
usbctrl = [ 'type=pv,version=2,ports=4',
            'version=1,ports=2' ]
usbdev = [ 'device=tablet,controller=0,port=3', 'device=keyboard' ]
CFG
expect 0 "" p apply "$tmp/good.cfg"
check "apply (xl): tablet on 0/3" test "$(port_dev cfgvm 0 3)" = tablet
check "apply (xl): keyboard on the first free port" test "$(port_dev cfgvm 0 1)" = keyboard
expect 1 "pvusb: cfgvm already has controllers; remove them with usbctrl-detach first" p apply "$tmp/good.cfg"
cat >"$tmp/xm.cfg" <<'CFG'
vusb = [ 'usbver=2, numports=4, port_1=tablet' ]
CFG
run p apply "$tmp/xm.cfg" xmvm
check "apply (xm) with the domain on the command line" test "$rc" = 0 -a "$(port_dev xmvm 0 1)" = tablet
cat >"$tmp/emul.cfg" <<'CFG'
name = "hvm"
usb = 1
usbdevice = [ 'tablet', 'keyboard' ]
CFG
expect 0 "" p apply "$tmp/emul.cfg"
check "apply (emulated): tablet and keyboard" test "$(port_dev hvm 0 1)/$(port_dev hvm 0 2)" = tablet/keyboard
printf 'name = "broken"\nusbctrl = [ %s ]\nusbdev = [ %s ]\n' "'version=2,ports=4'" "'device=sourcesink,controller=0,port=5'" >"$tmp/broken.cfg"
run p apply "$tmp/broken.cfg"
check "broken config: exit 1, file and line named" test "$rc" = 1 -a -n "$(grep -F "$tmp/broken.cfg:3: usbdev[0]" "$tmp/err")"
check "broken config changed nothing" test "$(p usb-list broken --json | jq length)" = 0
printf 'name = "late"\nusbctrl = [ %s ]\nusbdev = [ %s, %s ]\n' "'version=2,ports=4'" "'device=tablet'" "'device=storage:$tmp/nope.img'" >"$tmp/late.cfg"
run p apply "$tmp/late.cfg"
check "a config failing at its last device: exit 1 naming line 3" test "$rc" = 1 -a -n "$(grep -F "late.cfg:3: usbdev[1]: cannot open" "$tmp/err")"
check "... and everything it did was undone" test "$(p usb-list late --json | jq length)" = 0
{ for i in $(seq 600); do echo "# comment line $i, long enough to make this file big: xxxxxxxxxxxx"; done
  cat "$tmp/emul.cfg"; } | sed 's/"hvm"/"bigvm"/' >"$tmp/big.cfg"
expect 0 "" p apply "$tmp/big.cfg"
check "a 40 KiB config with comments applies" test "$(port_dev bigvm 0 2)" = keyboard
head -c 70000 /dev/zero | tr '\0' '#' >"$tmp/huge.cfg"
expect 2 "pvusb: $tmp/huge.cfg is larger than 64 KiB; not a domain config" p apply "$tmp/huge.cfg"
expect 2 "pvusb: cannot read $tmp/none.cfg: No such file or directory" p apply "$tmp/none.cfg"
for f in "$EXAMPLES"/*.cfg; do
	grep -q "host:\|hostbus\|port_[0-9]*=[0-9]" "$f" && continue # needs real host devices
	run p apply "$f" "ex-$(basename "$f" .cfg)"
	check "example $(basename "$f") applies" test "$rc" = 0
done

# config directory at start; the state file wins for domains it knows
stop_daemon
cp "$tmp/emul.cfg" "$tmp/conf.d/hvm.cfg"
sed 's/cfgvm/boot/' "$tmp/good.cfg" >"$tmp/conf.d/boot.cfg"
echo 'name = "bad" usbctrl = [' >"$tmp/conf.d/bad.cfg"
start_daemon
check "config dir: a new domain is set up at start" test "$(port_dev boot 0 3)" = tablet
check "config dir: a domain the state file has is not doubled" test "$(p usb-list hvm --json | jq length)" = 1
check "config dir: a broken file is logged with its name" grep -q "bad.cfg" "$tmp/pvusbd.log"

# ---- socket access: root, or the --group ----
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	stop_daemon
	chmod 755 "$tmp"
	start_daemon --group nogroup
	run setpriv --reuid=nobody --regid=nogroup --clear-groups "$CLI" usb-list
	check "a member of --group may use the socket" test "$rc" = 0
	run setpriv --reuid=nobody --regid=daemon --clear-groups "$CLI" usb-list
	check "anyone else is refused (exit 3)" test "$rc" = 3
	[ "$rc" = 3 ] || echo "rc $rc: $err" >&2
fi

stop_daemon
check "state file is valid JSON after a clean stop" jq -e '.version == 1' "$tmp/state.json" >/dev/null
echo "test_cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
