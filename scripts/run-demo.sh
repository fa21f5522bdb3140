#!/bin/bash
# The main job on the embedded default: pvusbd on the local transport, a USB
# 2.0 controller with 8 ports, tablet + keyboard + storage (fresh image) +
# sourcesink attached with the pvusb CLI; a frontend enumerates them, reads
# a block and moves 256 MiB through the source/sink. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
bin=build/src
tmp=$(mktemp -d /tmp/pvusb-demo.XXXXXX)
export PVUSB_SOCKET=$tmp/pvusbd.sock
"$bin/daemon/pvusbd" -f -q -s "$PVUSB_SOCKET" --state "$tmp/state.json" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -S "$PVUSB_SOCKET" ] && break; sleep 0.05; done
truncate -s 64M "$tmp/disk.img"
cli="$bin/cli/pvusb"
$cli usbctrl-attach demo type=pv version=2 ports=8 >/dev/null
$cli usbdev-attach demo tablet controller=0 port=1
$cli usbdev-attach demo keyboard controller=0 port=2
$cli usbdev-attach demo "storage:$tmp/disk.img" controller=0 port=3
$cli usbdev-attach demo sourcesink controller=0 port=4
echo "== backend view (pvusb usb-list demo)"
$cli usb-list demo
echo "== guest view (pvusb-demo)"
"$bin/front/pvusb-demo" demo "${PVUSB_DEMO_MIB:-256}"
