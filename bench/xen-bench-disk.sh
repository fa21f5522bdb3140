# shellcheck shell=sh disable=SC3028 # $EPOCHREALTIME: bash and busybox ash have it
# bench/xen-bench-disk.sh: the disk half of bench/xen-bench.sh, sourced by the dom0 script
# (bash) and the domU script (busybox ash), so that both time the same way:
#
#   disk_bench LABEL DEV
#
# prints one line per case
#   BENCH LABEL disk-{read,write}-{64k,1m} MB/s-value MB/s
# measured with that system's own dd and O_DIRECT (iflag=direct / oflag=direct) on the
# whole block device DEV, timed with the shell's $EPOCHREALTIME around dd (both bash and
# busybox ash have it). Each case first moves DISK_PROBE_MIB (4) MiB to learn the speed,
# then DISK_SECS (3) seconds' worth, at most DISK_CAP_MIB (96) MiB, from the start of DEV;
# the second run is the figure. Writes overwrite DEV with zeros.
# Returns non-zero when a dd failed (the case is then missing from the output).

: "${DISK_PROBE_MIB:=4}"
: "${DISK_SECS:=3}"
: "${DISK_CAP_MIB:=96}"

# disk_dd DEV read|write BS COUNT -> "SECONDS" on stdout
disk_dd() {
    _t0=$EPOCHREALTIME
    if [ "$2" = read ]; then
        dd if="$1" of=/dev/null bs="$3" count="$4" iflag=direct 2>/tmp/disk-dd.err
    else
        dd if=/dev/zero of="$1" bs="$3" count="$4" oflag=direct conv=notrunc 2>/tmp/disk-dd.err
    fi || { echo "disk_bench: dd $2 bs=$3 count=$4 on $1 failed: $(cat /tmp/disk-dd.err)" >&2; return 1; }
    _t1=$EPOCHREALTIME
    awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.6f\n", b - a }'
}

disk_bench() {
    _label=$1 _dev=$2 _rc=0
    for _case in read:65536:64k read:1048576:1m write:65536:64k write:1048576:1m; do
        _mode=${_case%%:*} _bs=${_case#*:} _name=${_case##*:}
        _bs=${_bs%%:*}
        _n=$((DISK_PROBE_MIB * 1048576 / _bs))
        _t=$(disk_dd "$_dev" "$_mode" "$_bs" "$_n") || { _rc=1; continue; }
        # Blocks for DISK_SECS at the probe's speed, within [probe, cap].
        _n=$(awk -v t="$_t" -v n="$_n" -v s="$DISK_SECS" -v bs="$_bs" -v cap="$DISK_CAP_MIB" 'BEGIN {
            m = t > 0 ? int(n * s / t) : n; c = int(cap * 1048576 / bs)
            if (m > c) m = c; if (m < n) m = n; print m }')
        _t=$(disk_dd "$_dev" "$_mode" "$_bs" "$_n") || { _rc=1; continue; }
        awk -v t="$_t" -v n="$_n" -v bs="$_bs" -v l="$_label" -v c="disk-$_mode-$_name" 'BEGIN {
            if (t > 0) printf "BENCH %s %s %.2f MB/s\n", l, c, n * bs / t / 1e6
            printf "DISKRUN %s %s bytes %d seconds %.3f\n", l, c, n * bs, t }'
    done
    return $_rc
}
