#!/bin/bash
# SPDX-License-Identifier: MIT
# Tests contrib/bash-completion/pvusb: sources it, sets the variables bash
# sets (COMP_LINE, COMP_POINT, COMP_WORDS, COMP_CWORD), calls _pvusb and
# checks COMPREPLY. A stub 'pvusb' on PATH plays pvusbd's JSON answers.
# Usage: test-completion.sh <path to the completion file>
set -u
comp=${1:?usage: test-completion.sh <completion file>}
comp=$(cd "$(dirname "$comp")" && pwd)/$(basename "$comp") # 'source' would search PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

mkdir "$tmp/bin" "$tmp/cfgs"
cat >"$tmp/bin/pvusb" <<'STUB'
#!/bin/bash
echo "$*" >>"$PVUSB_STUB_LOG"
[[ -n ${PVUSB_STUB_DOWN:-} ]] && { echo "pvusb: cannot reach pvusbd" >&2; exit 3; }
args=" $* "
if [[ $args == *" usb-list-assignable-devices "* ]]; then
  printf '[\n  {\n    "busid":"1-2",\n    "id":"046d:c016"\n  },\n  {\n    "busid": "3-1.5",\n    "id":"0424:0460"\n  }\n]\n'
elif [[ $args == *" usb-list guest1 "* ]]; then
  printf '[\n  {\n    "frontend":"guest1",\n    "controller":0\n  },\n  {\n    "frontend":"guest1",\n    "controller":1\n  }\n]\n'
elif [[ $args == *" usb-list "* ]]; then
  printf '[ { "frontend":"guest1", "controller":0 }, { "frontend":"guest1", "controller":1 }, { "frontend":"win10", "controller":0 } ]\n'
fi
STUB
chmod +x "$tmp/bin/pvusb"
touch "$tmp/cfgs/a.cfg" "$tmp/cfgs/b.cfg" "$tmp/cfgs/notes.txt"
mkdir "$tmp/cfgs/sub"
export PATH="$tmp/bin:$PATH" PVUSB_STUB_LOG="$tmp/log"
: >"$PVUSB_STUB_LOG"

# shellcheck source=/dev/null
source "$comp"
COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'

# complete LINE: run _pvusb as bash would with the cursor at the end of LINE.
complete_line()
{
    COMP_LINE=$1
    COMP_POINT=${#1}
    read -r -a COMP_WORDS <<<"$1"
    [[ $1 == *' ' ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _pvusb
}

# expect LINE WORD...: COMPREPLY is exactly these words (in any order).
expect()
{
    local line=$1
    shift
    complete_line "$line" 2>"$tmp/err"
    local got want
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [[ $# -eq 0 ]] && want=""
    [[ ${#COMPREPLY[@]} -eq 0 ]] && got=""
    if [[ $got == "$want" && ! -s $tmp/err ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: '$line'"
        echo "  want: $want"
        echo "  got:  $got"
        [[ -s $tmp/err ]] && sed 's/^/  stderr: /' "$tmp/err"
    fi
}

check()
{
    if eval "$1"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $2"; fi
}

expect "pvusb " usbctrl-attach usbctrl-detach usbdev-attach usbdev-detach usb-list \
    usb-list-assignable-devices apply usb-hc-create usb-hc-destroy usb-attach usb-detach
expect "pvusb usbd" usbdev-attach usbdev-detach
expect "pvusb usb-h" usb-hc-create usb-hc-destroy
expect "pvusb --j" --json
expect "pvusb usb-list --" --json --socket --help
expect "pvusb usbctrl-attach " guest1 win10
expect "pvusb --json usbctrl-attach g" guest1
expect "pvusb usbctrl-attach guest1 " type= version= ports=
expect "pvusb usbctrl-attach guest1 ports=8 " type= version=
expect "pvusb usbctrl-attach guest1 version=" 1 2
expect "pvusb usbctrl-attach guest1 type=a" auto
expect "pvusb usbdev-attach guest1 " 1-2 3-1.5 tablet keyboard sourcesink storage:
expect "pvusb usbdev-attach guest1 t" tablet
expect "pvusb usbdev-attach guest1 1-2 " controller= port=
expect "pvusb usbdev-attach guest1 1-2 controller=" 0 1
expect "pvusb usbdev-attach guest1 1-2 controller=0 " port=
expect "pvusb usbdev-detach guest1 " 0 1
expect "pvusb usb-hc-create guest1 " 1 2
expect "pvusb usb-attach guest1 0 1 3" 3-1.5
expect "pvusb usb-list-assignable-devices "
expect "pvusb apply $tmp/cfgs/" "$tmp/cfgs/a.cfg" "$tmp/cfgs/b.cfg" "$tmp/cfgs/sub/"
expect "pvusb apply $tmp/cfgs/a.cfg " guest1 win10

: >"$PVUSB_STUB_LOG"
expect "pvusb --socket /tmp/other.sock usb-list " guest1 win10
check "grep -q -- '--socket /tmp/other.sock usb-list --json' '$PVUSB_STUB_LOG'" \
    "the --socket of the command line is passed on"

# pvusbd not running: nothing to offer, and nothing printed
export PVUSB_STUB_DOWN=1
expect "pvusb usb-list "
expect "pvusb usbdev-attach guest1 " tablet keyboard sourcesink storage:
unset PVUSB_STUB_DOWN

check "complete -p pvusb | grep -q _pvusb" "complete -F _pvusb pvusb is registered"

echo "test-completion: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
