#!/bin/bash
# The smolvm demo: builds everything, starts smolvmd on a private bus and
# takes a VM through create -> start -> snapshot -> delete -> restore -> list,
# with the CLI and with busctl. The VMM is the project's Firecracker API
# emulator (tests/fc-emulator): this machine has no Firecracker.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
tools/build.sh
if [ -z "${SMOLVM_DEMO_INNER:-}" ]; then
  export SMOLVM_DEMO_INNER=1
  exec dbus-run-session -- "$0" "$@"
fi

build=$PWD/build
work=$(mktemp -d /tmp/smolvm-demo.XXXXXX)
smolvm() { "$build/src/cli/smolvm" --session "$@"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  pkill -f -- "--api-sock $work/" 2>/dev/null || true
  [ -n "${SMOLVM_DEMO_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# A stand-in kernel and a sparse 1 GiB root filesystem with a little data.
echo "demo kernel" > "$work/vmlinux"
truncate -s 1G "$work/rootfs.ext4"
echo "hello from the rootfs" | dd of="$work/rootfs.ext4" conv=notrunc status=none

FC_EMULATOR_TICK_MS=200 ${SMOLVM_DAEMON_WRAPPER:-} "$build/src/daemon/smolvmd" --session \
  --state-dir "$work/state" --runtime-dir "$work/run" \
  --firecracker-bin "$build/tests/fc-emulator" 2> "$work/smolvmd.log" &
daemon_pid=$!
for _ in $(seq 100); do
  busctl --user status org.smolvm.Manager >/dev/null 2>&1 && break
  sleep 0.1
done

console="$work/run/vms/my-vm/console.log"
wait_tick() { # wait until the console shows at least tick $1
  for _ in $(seq 200); do
    n=$(last_tick)
    [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
    sleep 0.05
  done
  echo "the guest did not reach tick $1" >&2; return 1
}
last_tick() { { grep -o '^tick [0-9]*' "$console" 2>/dev/null || true; } | tail -n1 | cut -d' ' -f2; }

step smolvm create --vm-id my-vm --kernel vmlinux --rootfs rootfs.ext4 --no-network --start
(cd "$work" && smolvm create --vm-id my-vm --kernel vmlinux --rootfs rootfs.ext4 --no-network --start)
wait_tick 5
step smolvm list
smolvm list
step smolvm snapshot create my-vm --snapshot-id before-deploy
smolvm snapshot create my-vm --snapshot-id before-deploy
at_snapshot=$(last_tick)
echo "(the guest was at tick $at_snapshot when the snapshot was taken)"
step smolvm resume my-vm
smolvm resume my-vm
wait_tick $((at_snapshot + 5))
echo "(the guest ran on to tick $(last_tick))"
step smolvm delete my-vm --force
smolvm delete my-vm --force
step smolvm snapshot list
smolvm snapshot list
step smolvm snapshot restore before-deploy --resume
smolvm snapshot restore before-deploy --resume
ticks_after_load() { awk '/fc-emulator: snapshot loaded/{f=1; n=0; next} f && /^tick/{print $2}' "$console"; }
for _ in $(seq 200); do
  [ "$(ticks_after_load | wc -l)" -ge 3 ] && break
  sleep 0.05
done
step "tail -n 8 the guest console"
tail -n 8 "$console"
first_after=$(ticks_after_load | head -n1)
echo "(first tick after the restore: $first_after; tick at the snapshot: $at_snapshot)"
[ "$first_after" -eq $((at_snapshot + 1)) ] || { echo "the guest did not continue from its snapshot" >&2; exit 1; }
step smolvm snapshot list --json
smolvm snapshot list --json
step busctl --user call org.smolvm.Manager /org/smolvm/Manager org.smolvm.Manager ListSnapshots s ""
busctl --user call org.smolvm.Manager /org/smolvm/Manager org.smolvm.Manager ListSnapshots s ""
step busctl --user get-property org.smolvm.Manager /org/smolvm/Manager/snapshot/before_2ddeploy org.smolvm.Snapshot Restored RestoredVmId
busctl --user get-property org.smolvm.Manager /org/smolvm/Manager/snapshot/before_2ddeploy org.smolvm.Snapshot Restored RestoredVmId
step smolvm stop my-vm
smolvm stop my-vm
echo
echo "Demo complete: the restored guest continued from tick $at_snapshot."
