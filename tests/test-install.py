#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Installs smolvm into a temporary DESTDIR and checks what it installed.

    SMOLVM_BUILD_DIR=build /usr/bin/python3 tests/test-install.py [BUILD_DIR]

- the installed files are exactly the expected ones, for the build options
  of BUILD_DIR and what this machine has (polkit, systemd, scdoc,
  bash-completion), computed here independently of the meson.build files;
- the polkit policy: well-formed and valid (polkit's DTD), its actions and
  defaults, its strings extracted by xgettext through po/POTFILES.in;
- the example polkit rules, run under node with a fake polkit (if node is
  installed);
- the D-Bus bus policy, loaded by a real dbus-daemon with a system-bus-like
  configuration, with the installed smolvmd on it (configured by the
  installed smolvmd.conf with its keys uncommented): nobody may call the
  allowed interfaces and nothing else, and may not own the name;
- the D-Bus activation file: its keys, and dbus-daemon lists the name;
- the systemd unit: systemd-analyze verify against the DESTDIR (skipped
  without systemd-analyze);
- the man pages: groff warnings, and every option of smolvm and smolvmd
  --help is documented and every documented option exists;
- the bash completion, run in bash against a fake smolvm;
- libsmolvm-1: the library, its headers and smolvm-1.pc, against which a
  small C program compiles, links and runs; Smolvm-1.0.gir (its namespace,
  library, header, package and types) and the typelib, which python3-gi
  loads from the DESTDIR.

The last output line is "N passed, M failed"; the exit status is 1 if
anything failed.
"""

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534

passed = 0
failed = 0


def check(ok, what, detail=None):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")
        if detail:
            for line in str(detail).rstrip().splitlines():
                print(f"     {line}")
    return ok


def skip(what, why):
    print(f"skip {what}: {why}")


def run(argv, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(argv, **kwargs)


def pkg_config(*args):
    if shutil.which("pkg-config") is None:
        return None
    r = run(["pkg-config", *args])
    return r.stdout.strip() if r.returncode == 0 else None


# ---- what should be installed ----


def project_version(build_dir):
    r = run(["meson", "introspect", "--projectinfo", build_dir])
    return json.loads(r.stdout)["version"] if r.returncode == 0 else None


def build_options(build_dir):
    r = run(["meson", "introspect", "--buildoptions", build_dir])
    if r.returncode != 0:
        sys.exit(f"meson introspect failed: {r.stderr}")
    return {o["name"]: o["value"] for o in json.loads(r.stdout)}


PYTHON_SDK = ("__init__.py", "_client.py", "exceptions.py", "facade.py", "manager.py",
              "models.py")


def python_sdk_dir(prefix):
    """Where Debian's python3 looks for pure modules below @prefix."""
    r = run(["/usr/bin/python3", "-c", "import sys, sysconfig; print(sysconfig.get_path("
             "'purelib', 'deb_system', vars={'base': sys.argv[1]}))", prefix])
    return r.stdout.strip()


def expected_files(opts):
    prefix = opts["prefix"]

    def d(name):
        return os.path.join(prefix, opts[name])

    datadir = d("datadir")
    files = {
        os.path.join(d("bindir"), "smolvm"),
        os.path.join(d("libexecdir"), "smolvmd"),
        os.path.join(d("sysconfdir"), "smolvm", "smolvmd.conf"),
        os.path.join(datadir, "dbus-1", "system.d", "org.smolvm.Manager.conf"),
        os.path.join(datadir, "dbus-1", "system-services", "org.smolvm.Manager.service"),
    }
    for iface in ("Manager", "VM", "Snapshot", "Job"):
        files.add(os.path.join(datadir, "dbus-1", "interfaces", f"org.smolvm.{iface}.xml"))

    # translations, none yet
    with open(os.path.join(SOURCE_DIR, "po", "LINGUAS")) as f:
        for line in f:
            for lang in line.split("#")[0].split():
                files.add(os.path.join(d("localedir"), lang, "LC_MESSAGES", "smolvm.mo"))

    have = {}

    # libsmolvm-1
    libdir = d("libdir")
    for name in ("libsmolvm-1.so", "libsmolvm-1.so.0", "libsmolvm-1.so.0.0.0"):
        files.add(os.path.join(libdir, name))
    files.add(os.path.join(libdir, "pkgconfig", "smolvm-1.pc"))
    for header in LIB_HEADERS:
        files.add(os.path.join(d("includedir"), "libsmolvm-1", header))
    have["introspection"] = opts["introspection"] != "disabled" and pkg_config(
        "--exists", "gobject-introspection-1.0") is not None
    if have["introspection"]:
        files.add(os.path.join(datadir, "gir-1.0", "Smolvm-1.0.gir"))
        files.add(os.path.join(libdir, "girepository-1.0", "Smolvm-1.0.typelib"))
        # the Python SDK, in Debian python3's site-packages below the prefix
        for name in PYTHON_SDK:
            files.add(os.path.join(python_sdk_dir(prefix), "smolvm", name))

    have["polkit"] = opts["polkit"] != "disabled" and pkg_config(
        "--exists", "polkit-gobject-1 >= 0.105") is not None
    if have["polkit"]:
        files.add(os.path.join(datadir, "polkit-1", "actions", "org.smolvm.policy"))
        files.add(os.path.join(datadir, "doc", "smolvm", "examples",
                               "50-smolvm-snapshots.rules.example"))

    unitdir = None
    if opts["systemd"] != "disabled":
        unitdir = opts["systemdsystemunitdir"] or None
        if unitdir is None and pkg_config("--exists", "systemd") is not None:
            unitdir = pkg_config("--variable=systemdsystemunitdir", "systemd")
    have["unitdir"] = unitdir
    if unitdir:
        files.add(os.path.join(unitdir, "smolvmd.service"))

    have["man"] = opts["man"] != "disabled" and shutil.which("scdoc") is not None
    if have["man"]:
        files.add(os.path.join(d("mandir"), "man1", "smolvm.1"))
        files.add(os.path.join(d("mandir"), "man8", "smolvmd.8"))

    completionsdir = None
    if opts["bash_completion"] != "disabled":
        completionsdir = pkg_config("--variable=completionsdir",
                                    f"--define-variable=datadir={datadir}", "bash-completion")
        if not completionsdir:
            completionsdir = os.path.join(datadir, "bash-completion", "completions")
        files.add(os.path.join(completionsdir, "smolvm"))
    have["completionsdir"] = completionsdir
    return files, have


LIB_HEADERS = ("smolvm.h", "smolvm-client.h", "smolvm-enum-types.h", "smolvm-error.h",
               "smolvm-snapshot-info.h", "smolvm-vm-info.h")


def installed_files(destdir):
    found = set()
    for root, dirs, names in os.walk(destdir):
        for name in names + [x for x in dirs if os.path.islink(os.path.join(root, x))]:
            found.add("/" + os.path.relpath(os.path.join(root, name), destdir))
    return found


# ---- polkit ----

ACTIONS = ("org.smolvm.snapshot.create", "org.smolvm.snapshot.restore",
           "org.smolvm.snapshot.clone", "org.smolvm.snapshot.delete",
           "org.smolvm.snapshot.push", "org.smolvm.snapshot.pull", "org.smolvm.vm.manage",
           "org.smolvm.vm.console")


def check_policy(path):
    r = run(["xmllint", "--noout", path])
    check(r.returncode == 0 and r.stderr == "", "polkit policy is well-formed (xmllint)", r.stderr)
    dtd = "/usr/share/polkit-1/policyconfig-1.dtd"
    if os.path.exists(dtd):
        r = run(["xmllint", "--noout", "--dtdvalid", dtd, path])
        check(r.returncode == 0 and r.stderr == "", "polkit policy is valid against polkit's DTD",
              r.stderr)
    else:
        skip("polkit DTD validation", f"{dtd} not installed (polkitd)")

    root = ET.parse(path).getroot()
    check(root.findtext("vendor") == "smolvm", "polkit vendor is smolvm")
    actions = {a.get("id"): a for a in root.findall("action")}
    check(sorted(actions) == sorted(ACTIONS), "polkit actions are exactly those smolvmd checks",
          sorted(actions))
    for action_id, action in actions.items():
        defaults = action.find("defaults")
        got = {k: defaults.findtext(k) for k in ("allow_any", "allow_inactive", "allow_active")}
        want = {"allow_any": "auth_admin", "allow_inactive": "auth_admin",
                "allow_active": "auth_admin_keep"}
        check(got == want, f"{action_id}: defaults", got)
        # untranslated: no xml:lang copies yet, but one plain description and message
        descriptions = [e for e in action.findall("description") if not e.attrib]
        messages = [e for e in action.findall("message") if not e.attrib]
        check(len(descriptions) == 1 and descriptions[0].text and
              len(messages) == 1 and messages[0].text,
              f"{action_id}: has a description and a message")


def check_pot():
    """The policy's strings reach the .pot through po/POTFILES.in and the ITS
    rules in po/its (what `meson compile smolvm-pot` runs, into a temporary
    file instead of the source tree)."""
    if shutil.which("xgettext") is None:
        skip("xgettext extraction", "xgettext not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        pot = os.path.join(tmp, "smolvm.pot")
        env = dict(os.environ, GETTEXTDATADIRS=os.path.join(SOURCE_DIR, "po"))
        r = run(["xgettext", "--directory", SOURCE_DIR,
                 "--files-from", os.path.join(SOURCE_DIR, "po", "POTFILES.in"),
                 "--from-code=UTF-8", "--no-wrap", "-o", pot], env=env)
        text = open(pot).read() if os.path.exists(pot) else ""
        msgids = [m for m in re.findall(r'^msgid "(.*)"$', text, re.M) if m]
        check(r.returncode == 0 and len(msgids) == 2 * len(ACTIONS),
              f"xgettext extracts {2 * len(ACTIONS)} policy strings", r.stderr + str(msgids))


RULES_HARNESS = r"""
const fs = require("fs");
const YES = "yes", NOT_HANDLED = "not-handled";
let rules = [];
const polkit = { Result: { YES: YES, NO: "no", NOT_HANDLED: NOT_HANDLED },
                 addRule: (f) => rules.push(f), log: () => {} };
const source = fs.readFileSync(process.argv[2], "utf8");
new Function("polkit", source)(polkit);
function decide(id, groups, details) {
  const action = { id: id, lookup: (k) => details[k] };
  const subject = { user: "alice", isInGroup: (g) => groups.includes(g) };
  for (const rule of rules) {
    const r = rule(action, subject);
    if (r !== undefined && r !== NOT_HANDLED) return r;
  }
  return NOT_HANDLED;
}
console.log(JSON.stringify({
  rules: rules.length,
  create: decide("org.smolvm.snapshot.create", ["smolvm"], { verb: "create", vm_id: "a" }),
  restore: decide("org.smolvm.snapshot.restore", ["smolvm"], { verb: "restore", snapshot_id: "s" }),
  delete: decide("org.smolvm.snapshot.delete", ["smolvm"], { verb: "delete", snapshot_id: "s" }),
  clone: decide("org.smolvm.snapshot.clone", ["smolvm"], { verb: "clone", snapshot_id: "s" }),
  push: decide("org.smolvm.snapshot.push", ["smolvm"], { verb: "export", snapshot_id: "s" }),
  pull: decide("org.smolvm.snapshot.pull", ["smolvm"], { verb: "import" }),
  vm: decide("org.smolvm.vm.manage", ["smolvm"], { verb: "start", vm_id: "a" }),
  console: decide("org.smolvm.vm.console", ["smolvm"], { verb: "console", vm_id: "a" }),
  other: decide("org.smolvm.snapshot.create", ["users"], { verb: "create", vm_id: "a" }),
  ci_create: decide("org.smolvm.snapshot.create", ["smolvm-ci"], { verb: "create", vm_id: "ci-1" }),
  ci_create_other: decide("org.smolvm.snapshot.create", ["smolvm-ci"], { verb: "create", vm_id: "x" }),
  ci_restore: decide("org.smolvm.snapshot.restore", ["smolvm-ci"], { verb: "restore", snapshot_id: "ci-s", vm_id: "x" }),
  ci_start: decide("org.smolvm.vm.manage", ["smolvm-ci"], { verb: "start", vm_id: "ci-1" }),
  ci_delete_vm: decide("org.smolvm.vm.manage", ["smolvm-ci"], { verb: "delete", vm_id: "ci-1" }),
  ci_no_details: decide("org.smolvm.vm.manage", ["smolvm-ci"], { verb: "create" }),
  // a snapshot id smolvmd generated for VM ci-1 (snap-<vm_id>-<unix time>)
  ci_restore_auto: decide("org.smolvm.snapshot.restore", ["smolvm-ci"], { verb: "restore", snapshot_id: "snap-ci-1-1700000000", vm_id: "ci-1" }),
  ci_delete_auto: decide("org.smolvm.snapshot.delete", ["smolvm-ci"], { verb: "delete", snapshot_id: "snap-ci-1-1700000000" }),
  ci_clone: decide("org.smolvm.snapshot.clone", ["smolvm-ci"], { verb: "clone", snapshot_id: "ci-s", vm_id: "x" }),
  // ... of VM "ci" or "cix", which are not ci- VMs
  ci_restore_auto_ci: decide("org.smolvm.snapshot.restore", ["smolvm-ci"], { verb: "restore", snapshot_id: "snap-ci-1700000000", vm_id: "ci" }),
  ci_delete_auto_cix: decide("org.smolvm.snapshot.delete", ["smolvm-ci"], { verb: "delete", snapshot_id: "snap-cix-1700000000" }),
}));
"""


def check_rules(path):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        skip("polkit rules example", "node is not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        harness = os.path.join(tmp, "harness.js")
        with open(harness, "w") as f:
            f.write(RULES_HARNESS)
        r = run([node, harness, path])
        ok = r.returncode == 0
        got = json.loads(r.stdout) if ok else {}
        check(ok and got.get("rules") == 1 and got["create"] == "yes" and
              got["restore"] == "yes" and got["delete"] == "yes" and got["console"] == "yes" and
              got["clone"] == "yes" and got["push"] == "yes" and got["pull"] == "yes" and
              got["vm"] == "not-handled" and got["other"] == "not-handled",
              "rules example: group smolvm may create/restore/clone/delete/export/import "
              "snapshots and read consoles, nothing else",
              r.stderr + r.stdout)

        # the commented-out example, uncommented
        text = open(path).read()
        start = text.index("// polkit.addRule")
        block = "\n".join(line[3:] if line.startswith("// ") else line[2:]
                          for line in text[start:].splitlines())
        commented = os.path.join(tmp, "commented.rules")
        with open(commented, "w") as f:
            f.write(block)
        r = run([node, harness, commented])
        ok = r.returncode == 0
        got = json.loads(r.stdout) if ok else {}
        want = {"rules": 1, "ci_create": "yes", "ci_create_other": "not-handled",
                "ci_restore": "yes", "ci_start": "yes", "ci_delete_vm": "not-handled",
                "ci_no_details": "not-handled", "other": "not-handled",
                "ci_restore_auto": "yes", "ci_delete_auto": "yes", "ci_clone": "yes",
                "ci_restore_auto_ci": "not-handled", "ci_delete_auto_cix": "not-handled"}
        check(ok and all(got.get(k) == v for k, v in want.items()),
              "rules example: the commented-out fine-grained rule works", r.stderr + r.stdout)


# ---- libsmolvm-1 ----

LIB_PROGRAM = r"""
#include <smolvm.h>

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmInfo) info =
    smolvm_vm_info_new_from_variant (g_variant_new ("a{sv}", NULL), &error);

  g_print ("%s %s %s\n", g_quark_to_string (error->domain),
           smolvm_error_to_dbus_name (error->code), g_type_name (SMOLVM_TYPE_CLIENT));
  return info == NULL ? 0 : 1;
}
"""

GIR_NS = {"core": "http://www.gtk.org/introspection/core/1.0",
          "c": "http://www.gtk.org/introspection/c/1.0",
          "glib": "http://www.gtk.org/introspection/glib/1.0"}


def check_library(destdir, opts, have, version):
    prefix = opts["prefix"]
    libdir = destdir + os.path.join(prefix, opts["libdir"])
    with tempfile.TemporaryDirectory() as tmp:
        # smolvm-1.pc moved into the DESTDIR (--define-variable would move
        # GLib's too); what it requires comes from the system
        with open(os.path.join(libdir, "pkgconfig", "smolvm-1.pc")) as f:
            text = re.sub(r"^prefix=.*$", "prefix=" + destdir + prefix, f.read(), flags=re.M)
        with open(os.path.join(tmp, "smolvm-1.pc"), "w") as f:
            f.write(text)
        pc_env = dict(os.environ, PKG_CONFIG_PATH=tmp)
        r = run(["pkg-config", "--modversion", "smolvm-1"], env=pc_env)
        check(r.returncode == 0 and r.stdout.strip() == version,
              f"smolvm-1.pc: version {version}", r.stdout + r.stderr)
        r = run(["pkg-config", "--cflags", "--libs", "smolvm-1"], env=pc_env)
        flags = r.stdout.split()
        check(r.returncode == 0 and "-lsmolvm-1" in flags and
              "-I" + destdir + os.path.join(prefix, opts["includedir"], "libsmolvm-1") in flags
              and "-lgio-2.0" in flags,
              "smolvm-1.pc: -I<includedir>/libsmolvm-1, -lsmolvm-1 and GIO", r.stdout + r.stderr)

        # the installed headers stand on their own: <smolvm.h> is all it takes
        source = os.path.join(tmp, "program.c")
        program = os.path.join(tmp, "program")
        with open(source, "w") as f:
            f.write(LIB_PROGRAM)
        r = run(["cc", "-Wall", "-Werror", "-o", program, source] + flags)
        if check(r.returncode == 0, "a program using <smolvm.h> builds against the installation",
                 r.stdout + r.stderr):
            r = run([program], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
            check(r.returncode == 0 and r.stdout.strip() ==
                  "smolvm-error-quark org.smolvm.Error.InvalidArgument SmolvmClient",
                  "... and runs with the installed libsmolvm-1", r.stdout + r.stderr)

    if not have["introspection"]:
        skip("Smolvm-1.0.gir and typelib", "built without introspection")
        return
    gir = destdir + os.path.join(prefix, opts["datadir"], "gir-1.0", "Smolvm-1.0.gir")
    r = run(["xmllint", "--noout", gir])
    check(r.returncode == 0 and r.stderr == "", "Smolvm-1.0.gir is well-formed", r.stderr)
    root = ET.parse(gir).getroot()
    ns = root.find("core:namespace", GIR_NS)
    got = {
        "namespace": (ns.get("name"), ns.get("version")),
        "library": ns.get("shared-library"),
        "include": [e.get("name") for e in root.findall("core:include", GIR_NS)],
        "c-include": [e.get("name") for e in root.findall("c:include", GIR_NS)],
        "package": [e.get("name") for e in root.findall("core:package", GIR_NS)],
        "classes": sorted(e.get("name") for e in ns.findall("core:class", GIR_NS)),
        "error-domain": [e.get("name") for e in ns.findall("core:enumeration", GIR_NS)
                         if e.get("{%s}error-domain" % GIR_NS["glib"]) == "smolvm-error-quark"],
        "flags": sorted(e.get("name") for e in ns.findall("core:bitfield", GIR_NS)),
    }
    want = {
        "namespace": ("Smolvm", "1.0"),
        "library": "libsmolvm-1.so.0",
        "include": ["GObject", "Gio"],
        "c-include": ["smolvm.h"],
        "package": ["smolvm-1"],
        "classes": ["Client", "SnapshotInfo", "VmInfo"],
        "error-domain": ["Error"],
        "flags": ["SnapshotCloneFlags", "SnapshotCreateFlags", "SnapshotRestoreFlags",
                  "VmDeleteFlags"],
    }
    check(got == want, "Smolvm-1.0.gir: namespace, library, header, package, types",
          f"got {got}")

    typelibdir = libdir + "/girepository-1.0"
    code = ("import gi; gi.require_version('Smolvm', '1.0'); from gi.repository import Smolvm; "
            "print(gi.Repository.get_default().get_typelib_path('Smolvm'), "
            "Smolvm.error_to_dbus_name(Smolvm.Error.NOT_FOUND), Smolvm.Client.__gtype__.name)")
    r = run(["/usr/bin/python3", "-c", code],
            env=dict(os.environ, GI_TYPELIB_PATH=typelibdir, LD_LIBRARY_PATH=libdir))
    check(r.returncode == 0 and r.stdout.split() == [
        os.path.join(typelibdir, "Smolvm-1.0.typelib"), "org.smolvm.Error.NotFound",
        "SmolvmClient"], "python3-gi loads the installed typelib and library",
        r.stdout + r.stderr)

    sdk = destdir + python_sdk_dir(prefix)
    r = run(["/usr/bin/python3", "-c", "import smolvm; from smolvm import SmolVM, SmolVMManager, "
             "SnapshotInfo; print(smolvm.__file__, SnapshotInfo.__name__)"],
            env=dict(os.environ, PYTHONPATH=sdk, GI_TYPELIB_PATH=typelibdir,
                     LD_LIBRARY_PATH=libdir))
    check(r.returncode == 0 and r.stdout.split() == [
        os.path.join(sdk, "smolvm", "__init__.py"), "SnapshotInfo"],
        "the installed Python SDK imports on the installed typelib", r.stdout + r.stderr)


# ---- D-Bus ----

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{servicedir}</servicedir>
  <!-- the default policy of Debian's system.conf -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <include>{include}</include>
</busconfig>
"""


class Bus:
    def __init__(self, tmp, include, servicedir):
        self.socket = os.path.join(tmp, "system_bus_socket")
        self.config = os.path.join(tmp, "system.conf")
        with open(self.config, "w") as f:
            f.write(BUS_CONFIG.format(socket=self.socket, include=include, servicedir=servicedir))
        self.process = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.address = self.process.stdout.readline().strip()
        self.stderr = ""
        if not self.address:
            self.process.wait(timeout=10)
            self.stderr = self.process.stderr.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def gdbus(self, *args, uid=0):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address, HOME="/")
        kwargs = {}
        if uid != 0:
            kwargs = dict(user=uid, group=uid, extra_groups=[])
        return run(["gdbus", "call", "--system", *args], env=env, timeout=30, **kwargs)


def check_bus_conf_rejected_when_broken(tmp):
    """The harness must be able to fail: dbus-daemon refuses a bad include."""
    broken = os.path.join(tmp, "broken.conf")
    with open(broken, "w") as f:
        f.write("<busconfig><policy context=\"default\"><allow own_everything=\"x\"/>"
                "</policy></busconfig>\n")
    sub = os.path.join(tmp, "broken-bus")
    os.mkdir(sub)
    bus = Bus(sub, broken, sub)
    try:
        check(not bus.address, "dbus-daemon refuses a broken policy (self-test)")
    finally:
        bus.stop()


def check_dbus(destdir, opts, prefix):
    datadir = os.path.join(prefix, opts["datadir"])
    conf = destdir + os.path.join(datadir, "dbus-1", "system.d", "org.smolvm.Manager.conf")
    servicedir = destdir + os.path.join(datadir, "dbus-1", "system-services")
    smolvmd = destdir + os.path.join(prefix, opts["libexecdir"], "smolvmd")
    smolvmd_conf = destdir + os.path.join(prefix, opts["sysconfdir"], "smolvm", "smolvmd.conf")

    r = run(["xmllint", "--noout", conf])
    check(r.returncode == 0 and r.stderr == "", "D-Bus policy is well-formed (xmllint)", r.stderr)

    # the bus policy exactly as asked: own for root, send for these interfaces
    root = ET.parse(conf).getroot()
    policies = root.findall("policy")
    owners = [(p.attrib, [(e.tag, e.attrib) for e in p]) for p in policies if "user" in p.attrib]
    check(owners == [({"user": "root"}, [("allow", {"own": "org.smolvm.Manager"})])],
          "D-Bus policy: only root may own org.smolvm.Manager", owners)
    sends = set()
    other = []
    for p in policies:
        if p.attrib == {"context": "default"}:
            for e in p:
                if e.tag == "allow" and set(e.attrib) == {"send_destination", "send_interface"} \
                        and e.get("send_destination") == "org.smolvm.Manager":
                    sends.add(e.get("send_interface"))
                else:
                    other.append((e.tag, e.attrib))
    want = {"org.smolvm.Manager", "org.smolvm.VM", "org.smolvm.Snapshot", "org.smolvm.Job",
            "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
            "org.freedesktop.DBus.ObjectManager", "org.freedesktop.DBus.Peer"}
    check(sends == want and not other and len(policies) == 2,
          "D-Bus policy: default context may send exactly the eight interfaces",
          f"{sorted(sends)} {other}")

    if shutil.which("dbus-daemon") is None or shutil.which("gdbus") is None:
        skip("dbus-daemon checks", "dbus-daemon or gdbus not installed")
        return

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # nobody must reach the bus socket
        check_bus_conf_rejected_when_broken(tmp)

        bus = Bus(tmp, conf, servicedir)
        daemon = None
        try:
            if not check(bool(bus.address), "dbus-daemon starts with the installed policy",
                         bus.stderr):
                return

            r = bus.gdbus("-d", "org.freedesktop.DBus", "-o", "/org/freedesktop/DBus",
                          "-m", "org.freedesktop.DBus.ListActivatableNames")
            check(r.returncode == 0 and "'org.smolvm.Manager'" in r.stdout,
                  "dbus-daemon loads the activation file (ListActivatableNames)",
                  r.stderr + r.stdout)

            if os.geteuid() != 0:
                skip("bus policy with smolvmd", "needs root (smolvmd owns the name as root, "
                     "the checks run as nobody)")
                return

            # The installed smolvmd, configured through the installed
            # smolvmd.conf with every key uncommented: proves each
            # documented key is one smolvmd accepts.
            state = os.path.join(tmp, "state")
            runtime = os.path.join(tmp, "run")
            text = open(smolvmd_conf).read()
            values = {"state-dir": state, "runtime-dir": runtime,
                      "firecracker-bin": shutil.which("true"), "qemu-bin": shutil.which("true")}
            keys = re.findall(r"^#([a-z_-]+)=", text, re.M)
            check(sorted(keys) == sorted(["firecracker-bin", "qemu-bin", "state-dir",
                                          "runtime-dir", "network-pool", "vmm-timeout",
                                          "default-kernel", "default-initrd", "default-rootfs",
                                          "default-backend", "default-accel",
                                          "registry-auth-file", "insecure_registries"]),
                  "smolvmd.conf documents the thirteen keys", keys)
            uncommented = re.sub(r"^#([a-z_-]+)=(.*)$",
                                 lambda m: f"{m.group(1)}={values.get(m.group(1), m.group(2))}",
                                 text, flags=re.M)
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(uncommented)
            check(parser.sections() == ["daemon"], "smolvmd.conf has the group [daemon]")
            config = os.path.join(tmp, "smolvmd.conf")
            with open(config, "w") as f:
                f.write(uncommented)

            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
            log = open(os.path.join(tmp, "smolvmd.log"), "w+")
            daemon = subprocess.Popen([smolvmd, "--config", config], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
            owned = False
            for _ in range(100):
                r = bus.gdbus("-d", "org.freedesktop.DBus", "-o", "/org/freedesktop/DBus",
                              "-m", "org.freedesktop.DBus.NameHasOwner", "org.smolvm.Manager")
                if "true" in r.stdout:
                    owned = True
                    break
                if daemon.poll() is not None:
                    break
                time.sleep(0.1)
            log.seek(0)
            if not check(owned, "installed smolvmd (root) owns org.smolvm.Manager on the bus",
                         log.read()):
                return
            check(os.path.isdir(os.path.join(state, "vms")),
                  "smolvmd took state-dir from the config file")

            def call(what, object_path, method, *args, allowed=True):
                r = bus.gdbus("-d", "org.smolvm.Manager", "-o", object_path, "-m", method,
                              *args, uid=NOBODY)
                denied = "org.freedesktop.DBus.Error.AccessDenied" in r.stderr
                if allowed:
                    # allowed through the bus; smolvmd may still answer with an error
                    check(not denied and (r.returncode == 0 or "GDBus.Error" in r.stderr),
                          f"nobody may call {what}", r.stderr)
                else:
                    check(denied, f"nobody may not call {what}", r.stderr + r.stdout)
                return r

            r = call("org.smolvm.Manager.ListVMs", "/org/smolvm/Manager",
                     "org.smolvm.Manager.ListVMs")
            check(r.returncode == 0 and r.stdout.strip() == "(@a(oa{sv}) [],)",
                  "ListVMs answers (empty) to nobody", r.stdout + r.stderr)
            call("org.freedesktop.DBus.Properties", "/org/smolvm/Manager",
                 "org.freedesktop.DBus.Properties.Get", "org.smolvm.Manager", "Version")
            call("org.freedesktop.DBus.Introspectable", "/org/smolvm/Manager",
                 "org.freedesktop.DBus.Introspectable.Introspect")
            call("org.freedesktop.DBus.ObjectManager", "/org/smolvm/Manager",
                 "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
            call("org.freedesktop.DBus.Peer", "/org/smolvm/Manager",
                 "org.freedesktop.DBus.Peer.Ping")
            call("org.smolvm.VM", "/org/smolvm/Manager/vm/none", "org.smolvm.VM.Start")
            call("org.smolvm.Snapshot", "/org/smolvm/Manager/snapshot/none",
                 "org.smolvm.Snapshot.Delete", "@a{sv} {}")
            call("another interface", "/org/smolvm/Manager", "org.smolvm.Other.Method",
                 allowed=False)
            call("org.freedesktop.DBus.Debug.Stats", "/org/smolvm/Manager",
                 "org.freedesktop.DBus.Debug.Stats.GetStats", allowed=False)

            r = bus.gdbus("-d", "org.freedesktop.DBus", "-o", "/org/freedesktop/DBus",
                          "-m", "org.freedesktop.DBus.RequestName", "org.smolvm.Manager", "4",
                          uid=NOBODY)
            check("org.freedesktop.DBus.Error.AccessDenied" in r.stderr,
                  "nobody may not own org.smolvm.Manager", r.stderr + r.stdout)
        finally:
            if daemon is not None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
            bus.stop()


def check_activation_file(path, smolvmd_path, have):
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f]
    entries = []
    groups = []
    problems = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            groups.append(line)
            continue
        m = re.fullmatch(r"([A-Za-z0-9-]+)=(\S(?:.*\S)?)", line)
        if m is None:
            problems.append(f"line {n}: not KEY=VALUE without blanks around '=': {line!r}")
        else:
            entries.append((m.group(1), m.group(2)))
    keys = [k for k, _ in entries]
    check(groups == ["[D-BUS Service]"] and not problems and len(keys) == len(set(keys)),
          "activation file: one [D-BUS Service] group, KEY=VALUE lines, no duplicate keys",
          "\n".join(problems) + str(groups))
    values = dict(entries)
    want = {"Name": "org.smolvm.Manager", "Exec": smolvmd_path, "User": "root",
            "SystemdService": "smolvmd.service"}
    check(values == want, "activation file: Name, Exec, User, SystemdService", values)


SYSTEMD_UNIT_PATH = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                     "/usr/lib/systemd/system", "/lib/systemd/system")


def check_unit(destdir, unitdir, smolvmd_path, mandir, opts):
    unit = destdir + os.path.join(unitdir, "smolvmd.service")
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str
    parser.read(unit)
    service = parser["Service"] if parser.has_section("Service") else {}
    got = {k: service.get(k) for k in ("Type", "BusName", "ExecStart", "KillMode",
                                       "StateDirectory", "RuntimeDirectory",
                                       "RuntimeDirectoryPreserve")}
    want = {"Type": "dbus", "BusName": "org.smolvm.Manager", "ExecStart": smolvmd_path,
            "KillMode": "process", "StateDirectory": None, "RuntimeDirectory": None,
            "RuntimeDirectoryPreserve": None}
    # systemd creates the state and runtime directories below /var/lib and /run
    if opts["system_state_dir"].startswith("/var/lib/"):
        want["StateDirectory"] = opts["system_state_dir"][len("/var/lib/"):]
    if opts["system_runtime_dir"].startswith("/run/"):
        want["RuntimeDirectory"] = opts["system_runtime_dir"][len("/run/"):]
        want["RuntimeDirectoryPreserve"] = "yes"
    check(got == want, "smolvmd.service: type, bus name, ExecStart, directories", got)
    after = (parser["Unit"].get("After") or "").split() if parser.has_section("Unit") else []
    check("dbus.service" in after, "smolvmd.service: After=dbus.service (stopped before the bus)",
          after)

    if shutil.which("systemd-analyze") is None:
        skip("systemd-analyze verify", "systemd-analyze is not installed")
        return
    # Verify inside a root holding the installation, so that ExecStart
    # exists, plus the host's units that smolvmd.service depends on
    # (dbus.socket, sysinit.target, ...). The man pages named in
    # Documentation= are looked up in the installation too.
    with tempfile.TemporaryDirectory() as root:
        shutil.copytree(destdir, root, symlinks=True, dirs_exist_ok=True)
        for host_dir in ("/lib/systemd/system", "/usr/lib/systemd/system"):
            if os.path.isdir(host_dir) and not os.path.islink(host_dir):
                target = root + host_dir
                os.makedirs(target, exist_ok=True)
                run(["cp", "-an", host_dir + "/.", target + "/"])
        if os.path.normpath(unitdir) not in SYSTEMD_UNIT_PATH:
            # an unusual systemdsystemunitdir: systemd would not find it
            os.makedirs(root + "/etc/systemd/system", exist_ok=True)
            shutil.copy(unit, root + "/etc/systemd/system/smolvmd.service")
        env = dict(os.environ)
        args = ["systemd-analyze", "verify", f"--root={root}"]
        if mandir is not None:
            env["MANPATH"] = root + mandir
        else:
            args.append("--man=no")
        r = run(args + ["smolvmd.service"], env=env)
        output = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and output == "",
              "systemd-analyze verify smolvmd.service (in the DESTDIR, with its man pages)"
              if mandir else "systemd-analyze verify smolvmd.service (in the DESTDIR)", output)


# ---- man pages ----


def help_options(argv):
    r = run(argv + ["--help"])
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", r.stdout, re.M))


def scd_options(path, sections=None):
    """The options an scdoc page names in bold, in @sections (all if None)."""
    options = set()
    section = None
    with open(path) as f:
        for line in f:
            if line.startswith("# "):
                section = line[2:].strip()
            elif sections is None or section in sections:
                options |= set(re.findall(r"\*(--[a-z][a-z-]*)\*", line))
    return options


def check_man(destdir, mandir, smolvm, smolvmd):
    for page in ("man1/smolvm.1", "man8/smolvmd.8"):
        path = destdir + os.path.join(mandir, page)
        r = run(["man", "--warnings", "-l", path], env=dict(os.environ, MANWIDTH="80",
                                                            LC_ALL="C.UTF-8"))
        check(r.returncode == 0 and r.stderr.strip() == "" and "SYNOPSIS" in r.stdout,
              f"{page} renders without warnings", r.stderr)

    verbs = [["create"], ["list"], ["start"], ["pause"], ["resume"], ["stop"], ["delete"],
             ["console-log"], ["snapshot", "create"], ["snapshot", "restore"], ["snapshot", "clone"],
             ["snapshot", "delete"], ["snapshot", "list"], ["snapshot", "export"],
             ["snapshot", "import"], ["snapshot", "push"], ["snapshot", "pull"], ["job", "list"],
             ["job", "cancel"]]
    cli = set()
    for verb in [[]] + verbs:
        cli |= help_options([smolvm] + verb)
    documented = scd_options(os.path.join(SOURCE_DIR, "man", "smolvm.1.scd"))
    check(cli and cli == documented, "smolvm(1) documents exactly the options of smolvm --help",
          f"undocumented: {sorted(cli - documented)}, not in the CLI: {sorted(documented - cli)}")

    daemon = help_options([smolvmd])
    documented = scd_options(os.path.join(SOURCE_DIR, "man", "smolvmd.8.scd"),
                             {"SYNOPSIS", "OPTIONS"})
    check(daemon and daemon == documented,
          "smolvmd(8) documents exactly the options of smolvmd --help",
          f"undocumented: {sorted(daemon - documented)}, "
          f"not in smolvmd: {sorted(documented - daemon)}")


# ---- bash completion ----

FAKE_SMOLVM = """#!/bin/sh
# prints what "smolvm list --json" / "smolvm snapshot list --json" would
case "$*" in
*job*) printf '%s\\n' '{' '  "command": "job.list",' '  "exit_code": 0,' '  "ok": true,' \
  '  "data": {' '    "jobs": [' '      {' '        "job": 3,' \
  '        "path": "/org/smolvm/Manager/job/3",' '        "operation": "snapshot-create"' \
  '      },' '      {' '        "job": 12,' '        "operation": "vm-delete"' '      }' \
  '    ],' '    "total": 2' '  },' '  "error": null' '}' ;;
*snapshot*) printf '%s\\n' '{' '  "command": "snapshot.list",' '  "exit_code": 0,' \
  '  "ok": true,' '  "data": {' '    "snapshots": [' '      {' \
  '        "snapshot_id": "snap-one",' '        "vm_id": "vm-one"' '      }' '    ],' \
  '    "total": 1,' '    "filters": {' '      "vm_id": null' '    }' '  },' \
  '  "error": null' '}' ;;
*) printf '%s\\n' '{' '  "command": "vm.list",' '  "exit_code": 0,' '  "ok": true,' \
  '  "data": {' '    "vms": [' '      {' '        "vm_id": "vm-one",' \
  '        "state": "running"' '      },' '      {' '        "vm_id": "vm-two"' '      }' \
  '    ],' '    "total": 2' '  },' '  "error": null' '}' ;;
esac
"""


def complete(script, line, fake_dir):
    words = line.split(" ")
    bash = f"""
source /usr/share/bash-completion/bash_completion
source {script}
COMP_WORDS=({' '.join(repr(w) if w else '""' for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={line!r}
COMP_POINT={len(line)}
_smolvm smolvm "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = dict(os.environ, PATH=f"{fake_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    r = run(["bash", "--norc", "--noprofile", "-c", bash], env=env)
    return set(r.stdout.split()), r.stderr


def check_completion(script, smolvm):
    if not os.path.exists("/usr/share/bash-completion/bash_completion"):
        skip("bash completion", "bash-completion is not installed")
        return
    with tempfile.TemporaryDirectory() as fake_dir:
        fake = os.path.join(fake_dir, "smolvm")
        with open(fake, "w") as f:
            f.write(FAKE_SMOLVM)
        os.chmod(fake, 0o755)
        common = {"--json", "--session", "--no-ask-password", "--version", "--help"}
        cases = [
            ("smolvm ", {"create", "list", "start", "pause", "resume", "stop", "delete",
                         "console-log", "snapshot", "job"}),
            ("smolvm job ", {"list", "cancel"}),
            ("smolvm job cancel ", {"3", "12"}),
            ("smolvm job cancel 1", {"12"}),
            ("smolvm job list ", set()),
            ("smolvm snapshot ", {"create", "restore", "clone", "delete", "list", "export",
                                  "import", "push", "pull"}),
            ("smolvm --json snapshot ", {"create", "restore", "clone", "delete", "list",
                                         "export", "import", "push", "pull"}),
            ("smolvm snapshot export ", {"snap-one"}),
            ("smolvm snapshot push ", {"snap-one"}),
            # a reference: nothing to offer
            ("smolvm snapshot pull ", set()),
            ("smolvm start ", {"vm-one", "vm-two"}),
            ("smolvm stop vm-t", {"vm-two"}),
            ("smolvm snapshot create ", {"vm-one", "vm-two"}),
            ("smolvm snapshot restore ", {"snap-one"}),
            ("smolvm snapshot delete --json ", {"snap-one"}),
            ("smolvm snapshot list --vm-id ", {"vm-one", "vm-two"}),
            ("smolvm snapshot clone ", {"snap-one"}),
            # new VMs' ids and a number: nothing to offer
            ("smolvm snapshot clone snap-one --vm-id ", set()),
            ("smolvm snapshot clone snap-one --count ", set()),
            ("smolvm snapshot clone --count 2 ", {"snap-one"}),
            ("smolvm start vm-one ", set()),
            ("smolvm list --", common),
        ]
        # every command's options, as its --help lists them
        for verb in (["create"], ["delete"], ["snapshot", "create"], ["snapshot", "restore"],
                     ["snapshot", "clone"], ["snapshot", "list"], ["snapshot", "delete"],
                     ["snapshot", "export"], ["snapshot", "import"],
                     ["snapshot", "push"], ["snapshot", "pull"],
                     ["start"], ["job", "list"], ["job", "cancel"]):
            cases.append((f"smolvm {' '.join(verb)} --",
                          help_options([smolvm] + verb) | {"--help"}))
        for line, want in cases:
            got, err = complete(script, line, fake_dir)
            check(got == want, f"bash completion of {line!r}",
                  f"got {sorted(got)}, want {sorted(want)} {err}")


def main():
    build_dir = os.environ.get("SMOLVM_BUILD_DIR") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not build_dir:
        sys.exit("usage: SMOLVM_BUILD_DIR=BUILD test-install.py (or test-install.py BUILD)")
    opts = build_options(build_dir)
    prefix = opts["prefix"]
    expected, have = expected_files(opts)

    with tempfile.TemporaryDirectory() as destdir:
        r = run(["meson", "install", "-C", build_dir, "--destdir", destdir, "--no-rebuild",
                 "--quiet"], timeout=120)
        if not check(r.returncode == 0, "meson install --destdir", r.stdout + r.stderr):
            print(f"{passed} passed, {failed} failed")
            return 1
        found = installed_files(destdir)
        check(found == expected, f"the {len(expected)} installed files are exactly the expected",
              f"missing: {sorted(expected - found)}\nunexpected: {sorted(found - expected)}")

        # The installed smolvm links libsmolvm-1, which a real installation
        # has in libdir, where the dynamic linker looks.
        os.environ["LD_LIBRARY_PATH"] = destdir + os.path.join(prefix, opts["libdir"])
        check_library(destdir, opts, have, project_version(build_dir))

        smolvm_path = os.path.join(prefix, opts["bindir"], "smolvm")
        smolvmd_path = os.path.join(prefix, opts["libexecdir"], "smolvmd")
        for path in (smolvm_path, smolvmd_path):
            check(os.access(destdir + path, os.X_OK), f"{path} is executable")
        for iface in ("Manager", "VM", "Snapshot", "Job"):
            path = destdir + os.path.join(prefix, opts["datadir"], "dbus-1", "interfaces",
                                          f"org.smolvm.{iface}.xml")
            r = run(["xmllint", "--noout", path])
            check(r.returncode == 0 and r.stderr == "", f"org.smolvm.{iface}.xml is well-formed",
                  r.stderr)

        datadir = os.path.join(prefix, opts["datadir"])
        if have["polkit"]:
            check_policy(destdir + os.path.join(datadir, "polkit-1", "actions",
                                                "org.smolvm.policy"))
            check_rules(destdir + os.path.join(datadir, "doc", "smolvm", "examples",
                                               "50-smolvm-snapshots.rules.example"))
        else:
            skip("polkit policy", "built without polkit")
        check_pot()

        check_activation_file(destdir + os.path.join(datadir, "dbus-1", "system-services",
                                                     "org.smolvm.Manager.service"),
                              smolvmd_path, have)
        check_dbus(destdir, opts, prefix)

        mandir = os.path.join(prefix, opts["mandir"]) if have["man"] else None
        if have["unitdir"]:
            check_unit(destdir, have["unitdir"], smolvmd_path, mandir, opts)
        else:
            skip("systemd unit", "systemd unit not installed in this configuration")
        if mandir:
            check_man(destdir, mandir, destdir + smolvm_path, destdir + smolvmd_path)
        else:
            skip("man pages", "built without man pages")
        if have["completionsdir"]:
            check_completion(destdir + os.path.join(have["completionsdir"], "smolvm"),
                             destdir + smolvm_path)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
