#!/bin/bash
# Installs what is missing, builds, and runs every test: unit and two-process
# integration tests in an ASan+UBSan build, the libFuzzer harnesses for a
# bounded number of inputs (clang), and the main job as a smoke test.
# The last line is "N passed, N failed" (checks summed over all tests).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
log=$(mktemp /tmp/pvusb-test.XXXXXX)
trap 'rm -f "$log"' EXIT
failed_runs=0

run_suite() { # build dir, meson setup args...
  local dir=$1; shift
  [ -d "$dir" ] || meson setup "$dir" "$@" >/dev/null || { failed_runs=$((failed_runs+1)); return; }
  ninja -C "$dir" >/dev/null || { echo "build failed in $dir" >&2; failed_runs=$((failed_runs+1)); return; }
  (cd "$dir" && meson test --print-errorlogs --num-processes 2 ${SUITES:-}) | tee -a "$log" | grep -E '^ *[0-9]+/[0-9]+ ' 
  local fails
  fails=$(grep -hE '^(Fail|Timeout): ' "$dir/meson-logs/testlog.txt" | awk '{s+=$2} END {print s+0}')
  grep -hE '^[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed' "$dir/meson-logs/testlog.txt" >> "$log"
  failed_runs=$((failed_runs + fails))
}

# 1. unit + integration under ASan and UBSan (gcc), warnings are errors
ASAN_OPTIONS=detect_leaks=1 run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false
# 2. fuzzing for a bounded number of inputs (clang, libFuzzer)
[ -f tests/fuzz/meson.build ] && CC=clang run_suite build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
# 3. the main job, smaller, as the user runs it
if PVUSB_DEMO_MIB=32 scripts/run-demo.sh > /tmp/pvusb-demo.out 2>&1; then
  echo "demo: 1 passed, 0 failed" >> "$log"
else
  cat /tmp/pvusb-demo.out; echo "demo: 0 passed, 1 failed" >> "$log"
fi
# 4. real USB devices (gadgets) in a QEMU guest, through pvusbd's libusb back-end
tests/vm/gadget-suite.sh build > /tmp/pvusb-gadget.out 2>&1 || cat /tmp/pvusb-gadget.out
tail -n 1 /tmp/pvusb-gadget.out | grep -E '^gadget: [0-9]+ passed, [0-9]+ failed$' >> "$log" ||
  echo "gadget: 0 passed, 1 failed" >> "$log"
# 5. the libusb back-end's own checks on the same machine: device names,
#    ambiguity, unlink, host-stack requests, give-back after kill -9
tests/vm/libusb-vm.sh build > /tmp/pvusb-libusb-vm.out 2>&1 || cat /tmp/pvusb-libusb-vm.out
grep -E '^libusb: [0-9]+ passed, [0-9]+ failed$' /tmp/pvusb-libusb-vm.out | tail -n 1 >> "$log" ||
  echo "libusb_vm: 0 passed, 1 failed" >> "$log"
# 6. real Xen 4.17 in QEMU: pvusbd as xl's vusb backend for the real xen-hcd in PV domUs
#    If Xen under QEMU TCG loses the machine itself (a crash or hang with no result, or a
#    crashed program that is not pvusb's), and only then, the suite runs once more.
tests/vm/xen-suite.sh > /tmp/pvusb-xen.out 2>&1 ||
  { grep -q 'the machine gave no result' /tmp/pvusb-xen.out &&
    echo "xen: the test machine died, running the suite again" >&2 &&
    tests/vm/xen-suite.sh > /tmp/pvusb-xen.out 2>&1; } || cat /tmp/pvusb-xen.out
tail -n 1 /tmp/pvusb-xen.out | grep -E '^xen: [0-9]+ passed, [0-9]+ failed$' >> "$log" ||
  echo "xen: 0 passed, 1 failed" >> "$log"

passed=$(grep -hE '^[a-z0-9_]+: [0-9]+ passed' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -hE '^[a-z0-9_]+: [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$((failed + failed_runs))
grep -hE '^[a-z0-9_]+: [0-9]+ passed' "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
