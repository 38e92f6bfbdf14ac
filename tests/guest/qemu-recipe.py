#!/usr/bin/python3
"""Reference run of the QEMU 7.2 save/restore recipe in QEMU-NOTES.md (stdlib only).

    tests/guest/qemu-recipe.py [--guest DIR] [--work DIR] [--mode copy|private]

Boots the test guest (tests/build-guest.sh output), waits for "tick 3", saves it
(snap1), kills QEMU, restores snap1, checks that the first console line after the
restore is "tick <last+1>" and that the guest did not boot again, saves the
restored VM (snap2), restores snap2 and checks continuity again.  All three QEMU
processes append to the same WORK/console.log.  Every QMP message is written to
WORK/qmp-<n>.log.  Exit status 0 when every check passed.

--mode copy     restored VM runs on its own copy of mem.bin, share=on (recommended)
--mode private  restored VM maps the snapshot's mem.bin with share=off (copy-on-write)
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
APPEND = "console=ttyS0 panic=-1 quiet"
MEM = "256M"


class QMP:
    """Minimal QMP client; send_fds passes an fd with a command (for getfd)."""

    def __init__(self, path, logpath, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""
        self.log = open(logpath, "a")
        self.recv()  # greeting
        self.cmd("qmp_capabilities")

    def recv(self, timeout=30.0):
        while b"\n" not in self.buf:
            self.sock.settimeout(timeout)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("QMP connection closed (QEMU exited?)")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        self.log.write("<- " + line.decode() + "\n")
        self.log.flush()
        return json.loads(line)

    def cmd(self, name, args=None, fd=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        data = json.dumps(req).encode() + b"\n"
        self.log.write("-> " + data.decode().rstrip() + ("   [fd via SCM_RIGHTS]" if fd is not None else "") + "\n")
        if fd is not None:
            socket.send_fds(self.sock, [data], [fd])
        else:
            self.sock.sendall(data)
        while True:
            msg = self.recv()
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']['desc']}")
            if "return" in msg:
                return msg["return"]
            # else: an event, already logged


def qemu_argv(a, gen, mem_path, share, disk, incoming):
    argv = [QEMU,
            "-machine", "pc-q35-7.2,memory-backend=ram0",
            "-accel", "tcg", "-m", MEM, "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", f"{a.guest}/vmlinuz", "-initrd", f"{a.guest}/initramfs.cpio.gz",
            "-append", APPEND,
            "-object", f"memory-backend-file,id=ram0,size={MEM},mem-path={mem_path},share={share}",
            "-chardev", f"file,id=con0,path={a.work}/console.log,append=on",
            "-serial", "chardev:con0",
            "-drive", f"file={disk},format=raw,if=virtio",
            "-qmp", f"unix:{a.work}/qmp-{gen}.sock,server=on,wait=off"]
    if incoming:
        argv += ["-incoming", "defer"]
    return argv


def start(a, gen, argv):
    with open(f"{a.work}/cmdline-{gen}.txt", "w") as f:
        f.write(" ".join(argv) + "\n")
    err = open(f"{a.work}/qemu-{gen}.stderr", "w")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    return p, QMP(f"{a.work}/qmp-{gen}.sock", f"{a.work}/qmp-{gen}.log")


def console_since(a, offset):
    with open(f"{a.work}/console.log", "rb") as f:
        f.seek(offset)
        return [l.strip() for l in f.read().decode(errors="replace").splitlines() if l.strip()]


def console_size(a):
    try:
        return os.path.getsize(f"{a.work}/console.log")
    except FileNotFoundError:
        return 0


def wait_line(a, offset, line, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in console_since(a, offset):
            return True
        time.sleep(0.05)
    return False


def last_tick(a, offset):
    ticks = [int(l.split()[1]) for l in console_since(a, offset) if l.startswith("tick ")]
    return ticks[-1] if ticks else None


def boot(a):
    disk = f"{a.work}/vm0/disk.ext4"
    os.makedirs(f"{a.work}/vm0")
    subprocess.run(["cp", "--sparse=always", f"{a.guest}/rootfs.ext4", disk], check=True)
    for attempt in range(1, 4):
        off = console_size(a)
        t0 = time.monotonic()
        p, q = start(a, 0, qemu_argv(a, 0, f"{a.work}/vm0/ram", "on", disk, False))
        if wait_line(a, off, "tick 3", 60):
            print(f"boot: tick 3 after {time.monotonic() - t0:.2f}s (attempt {attempt})")
            return p, q, f"{a.work}/vm0/ram", disk
        print(f"boot attempt {attempt} hung, retrying")
        p.kill()
        p.wait()
    sys.exit("boot failed 3 times")


def save(a, q, ram, disk, snap):
    os.makedirs(snap)
    t = {}
    t0 = time.monotonic()
    q.cmd("stop")
    q.cmd("migrate-set-capabilities", {"capabilities": [
        {"capability": "x-ignore-shared", "state": True},
        {"capability": "events", "state": True}]})
    q.cmd("migrate-set-parameters", {"max-bandwidth": 0})
    fd = os.open(f"{snap}/vmstate.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    q.cmd("getfd", {"fdname": "vmstate"}, fd=fd)
    os.close(fd)  # QEMU has its own copy now
    q.cmd("migrate", {"uri": "fd:vmstate"})
    while True:
        st = q.cmd("query-migrate")
        if st["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.005)
    if st["status"] != "completed":
        sys.exit(f"save failed: {st}")
    t["migrate"] = time.monotonic() - t0
    t1 = time.monotonic()
    subprocess.run(["cp", "--sparse=always", ram, f"{snap}/mem.bin"], check=True)
    t["copy_mem"] = time.monotonic() - t1
    subprocess.run(["cp", "--sparse=always", disk, f"{snap}/disk.ext4"], check=True)
    t["total"] = time.monotonic() - t0
    t["vmstate_bytes"] = os.path.getsize(f"{snap}/vmstate.bin")
    return t


def restore(a, gen, snap):
    run = f"{a.work}/vm{gen}"
    os.makedirs(run)
    disk = f"{run}/disk.ext4"
    subprocess.run(["cp", "--sparse=always", f"{snap}/disk.ext4", disk], check=True)
    if a.mode == "copy":
        ram, share = f"{run}/ram", "on"
        subprocess.run(["cp", "--sparse=always", f"{snap}/mem.bin", ram], check=True)
    else:
        ram, share = f"{snap}/mem.bin", "off"
    off = console_size(a)
    t0 = time.monotonic()
    p, q = start(a, gen, qemu_argv(a, gen, ram, share, disk, True))
    q.cmd("migrate-set-capabilities", {"capabilities": [
        {"capability": "x-ignore-shared", "state": True},
        {"capability": "events", "state": True}]})
    fd = os.open(f"{snap}/vmstate.bin", os.O_RDONLY)
    q.cmd("getfd", {"fdname": "vmstate"}, fd=fd)
    os.close(fd)
    q.cmd("migrate-incoming", {"uri": "fd:vmstate"})
    while True:
        st = q.cmd("query-migrate")
        if st["status"] in ("completed", "failed"):
            break
        time.sleep(0.005)
    status = q.cmd("query-status")["status"]
    if st["status"] != "completed" or status != "paused":
        sys.exit(f"restore failed: {st} {status}")
    q.cmd("cont")
    print(f"restore gen {gen}: QEMU start -> running {time.monotonic() - t0:.3f}s")
    return p, q, ram, disk, off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guest", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "smolvm-guest"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--mode", choices=("copy", "private"), default="copy")
    a = ap.parse_args()
    if a.work is None:
        import tempfile
        a.work = tempfile.mkdtemp(prefix="qemu-recipe.")
    os.makedirs(a.work, exist_ok=True)
    print(f"work dir: {a.work}, mode: {a.mode}")

    p, q, ram, disk = boot(a)
    time.sleep(1)
    ok = True
    for gen in (1, 2):
        snap = f"{a.work}/snap{gen}"
        t = save(a, q, ram, disk, snap)
        last = last_tick(a, 0)
        print(f"save gen {gen - 1} -> {snap}: last tick {last}, "
              + ", ".join(f"{k} {v:.3f}s" if isinstance(v, float) else f"{k} {v}" for k, v in t.items()))
        p.kill()
        p.wait()
        p, q, ram, disk, off = restore(a, gen, snap)
        if not wait_line(a, off, f"tick {last + 3}", 30):
            print(f"FAIL: no tick {last + 3} after restore")
            ok = False
            break
        new = console_since(a, off)
        fresh_boot = any("init started" in l or "Linux version" in l for l in new)
        print(f"restore gen {gen}: first console lines after restore {new[:2]}, expected 'tick {last + 1}', "
              f"boot banner seen again: {fresh_boot}")
        if new[0] != f"tick {last + 1}" or fresh_boot:
            ok = False
        time.sleep(1)
    p.kill()
    p.wait()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
