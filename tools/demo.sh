#!/bin/bash
# The smolvm demo: builds everything and a small test guest (a Debian cloud
# kernel and a busybox initramfs that prints "tick N" every second), starts
# smolvmd on a private bus, and takes a QEMU VM through create -> start ->
# snapshot -> delete -> restore, showing that the guest continues where it
# was. It drives the daemon with the CLI and with busctl, and ends with the
# time each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
tools/build.sh
if [ -z "${SMOLVM_DEMO_INNER:-}" ]; then
  export SMOLVM_DEMO_INNER=1
  exec dbus-run-session -- "$0" "$@"
fi

build=$PWD/build
guest_dir=${SMOLVM_GUEST_CACHE:-$build/guest-cache}
work=$(mktemp -d /tmp/smolvm-demo.XXXXXX)
smolvm() { "$build/src/cli/smolvm" --session "$@"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
timings=()
took() { timings+=("$(printf '%-34s %6.2f s' "$1" "$(echo "$(now) - $2" | bc)")"); }
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  pkill -f -- "$work/" 2>/dev/null || true
  [ -n "${SMOLVM_DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

t=$(now)
step tests/build-guest.sh "$guest_dir"
mapfile -t guest < <(tests/build-guest.sh "$guest_dir")
kernel=${guest[0]} initrd=${guest[1]} rootfs=${guest[2]}
took "build (or reuse) the test guest" "$t"

${SMOLVM_DAEMON_WRAPPER:-} "$build/src/daemon/smolvmd" --session \
  --state-dir "$work/state" --runtime-dir "$work/run" 2> "$work/smolvmd.log" &
daemon_pid=$!
for _ in $(seq 100); do
  busctl --user status org.smolvm.Manager >/dev/null 2>&1 && break
  sleep 0.1
done

console="$work/run/vms/my-vm/console.log"
ticks() { { grep -o '^tick [0-9]*' "$console" 2>/dev/null || true; } | cut -d' ' -f2; }
last_tick() { ticks | tail -n1; }
wait_tick() { # $1: tick to reach, $2: seconds
  for _ in $(seq $(($2 * 10))); do
    n=$(last_tick)
    [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# TCG boots have been seen to hang silently about one time in ten: give the
# boot a deadline and boot again.
t=$(now)
for try in 1 2 3; do
  step smolvm create --vm-id my-vm --backend qemu --accel tcg --vcpus 1 --mem 256 \
    --kernel "$kernel" --initrd "$initrd" --rootfs "$rootfs" \
    --boot-args "'console=ttyS0 panic=-1 quiet'" --no-network --start
  smolvm create --vm-id my-vm --backend qemu --accel tcg --vcpus 1 --mem 256 \
    --kernel "$kernel" --initrd "$initrd" --rootfs "$rootfs" \
    --boot-args 'console=ttyS0 panic=-1 quiet' --no-network --start
  wait_tick 3 60 && break
  echo "(boot $try did not reach tick 3 in 60 s; booting again)"
  smolvm delete my-vm --force
  [ "$try" -lt 3 ] || { echo "the guest did not boot" >&2; exit 1; }
done
took "create, boot and reach tick 3" "$t"

step smolvm console-log my-vm
smolvm console-log my-vm
step smolvm list
smolvm list

t=$(now)
step smolvm snapshot create my-vm --snapshot-id before-deploy
smolvm snapshot create my-vm --snapshot-id before-deploy
took "snapshot create" "$t"
at_snapshot=$(last_tick)
echo "(the guest was at tick $at_snapshot when the snapshot was taken; it is paused)"
ls -ls "$work/state/snapshots/before-deploy"

step smolvm resume my-vm
smolvm resume my-vm
wait_tick $((at_snapshot + 3)) 30
echo "(the guest ran on to tick $(last_tick))"

t=$(now)
step smolvm delete my-vm --force
smolvm delete my-vm --force
took "delete the VM" "$t"

step smolvm snapshot list
smolvm snapshot list
# the VM's console log went with it; the restore starts a fresh one
for _ in $(seq 50); do [ -e "$console" ] || break; sleep 0.1; done
[ ! -e "$console" ] || { echo "the console log of the deleted VM is still there" >&2; exit 1; }

lines_before=0
t=$(now)
step smolvm snapshot restore before-deploy --resume
smolvm snapshot restore before-deploy --resume
took "snapshot restore (resumed)" "$t"
t=$(now)
for _ in $(seq 300); do
  [ "$(tail -n +$((lines_before + 1)) "$console" | grep -c '^tick')" -ge 1 ] && break
  sleep 0.1
done
took "restore to the first tick" "$t"
sleep 2
step "tail -n 8 console.log"
tail -n 8 "$console"
first_after=$(tail -n +$((lines_before + 1)) "$console" | grep -o '^tick [0-9]*' | head -n1 | cut -d' ' -f2)
boots=$(grep -c 'smolvm-guest: init started' "$console" || true)
echo "(first tick after the restore: $first_after; tick at the snapshot: $at_snapshot; boots seen since the restore: $boots)"
[ "$first_after" = $((at_snapshot + 1)) ] && [ "$boots" = 0 ] ||
  { echo "the guest did not continue from its snapshot" >&2; exit 1; }

step smolvm snapshot list --json
smolvm snapshot list --json
step busctl --user call org.smolvm.Manager /org/smolvm/Manager org.smolvm.Manager ListSnapshots s ""
busctl --user call org.smolvm.Manager /org/smolvm/Manager org.smolvm.Manager ListSnapshots s ""
step busctl --user get-property org.smolvm.Manager /org/smolvm/Manager/vm/my_2dvm org.smolvm.VM State Backend Machine
busctl --user get-property org.smolvm.Manager /org/smolvm/Manager/vm/my_2dvm org.smolvm.VM State Backend Machine
step smolvm stop my-vm
smolvm stop my-vm

echo
echo "Demo complete: the restored guest went on from tick $at_snapshot to tick $first_after without booting again."
echo
echo "Time taken on this machine:"
printf '  %s\n' "${timings[@]}"
