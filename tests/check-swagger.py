#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Validate logged Firecracker API requests against the Swagger contract.

Usage:
  check-swagger.py SWAGGER_YAML REQUEST_LOG...
  check-swagger.py --self-test SWAGGER_YAML

Each REQUEST_LOG line is a JSON object {"method", "path", "body"} as written
by fc-emulator (FC_EMULATOR_REQUEST_LOG).  For every request the Swagger path
template and method must exist, and the body must match the body parameter's
schema: required properties present, no undeclared properties (every object
schema is closed unless it says additionalProperties: true), JSON types,
enums, minimum/maximum.  Exits 1 if any request fails or if there is nothing
to check.

Needs Debian's PyYAML: run with /usr/bin/python3 (apt-get install python3-yaml).
"""

import contextlib
import io
import json
import os
import re
import sys
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - environment problem, not a check result
    sys.stderr.write("check-swagger: PyYAML missing; run with /usr/bin/python3 "
                     "(apt-get install python3-yaml)\n")
    sys.exit(2)

HTTP_METHODS = ("get", "put", "patch", "post", "delete", "head", "options")

# The Swagger gives PATCH /machine-config the full MachineConfiguration schema
# but describes the body as "A subset of Machine Configuration Parameters", and
# Firecracker deserializes it into an all-optional struct.  Only there are the
# schema's required properties not enforced (fc-emulator does the same).
PARTIAL_BODY_OPERATIONS = {("patch", "/machine-config")}


class Contract:
    def __init__(self, spec):
        self.spec = spec
        self.definitions = spec.get("definitions", {})
        self.paths = []
        for template, item in spec.get("paths", {}).items():
            names = re.findall(r"\{([^}/]+)\}", template)
            pattern = "^" + re.sub(r"\\\{[^}/]+\\\}", "([^/]+)", re.escape(template)) + "$"
            self.paths.append((template, re.compile(pattern), names, item))
        # Literal paths win over templates (none overlap today, but be exact).
        self.paths.sort(key=lambda p: len(p[2]))

    def resolve(self, schema):
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/definitions/"):
                raise ValueError("unsupported $ref %r" % ref)
            schema = self.definitions[ref[len("#/definitions/"):]]
            seen += 1
            if seen > 50:
                raise ValueError("$ref loop at %r" % ref)
        return schema

    def find(self, path):
        for template, regex, names, item in self.paths:
            m = regex.match(path)
            if m:
                return template, dict(zip(names, m.groups())), item
        return None, None, None

    def validate(self, value, schema, where, errors, enforce_required=True):
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        schema = self.resolve(schema)
        name = ref.rsplit("/", 1)[-1] if ref else where
        stype = schema.get("type")
        if stype is None and "properties" in schema:
            stype = "object"

        if stype == "object":
            if not isinstance(value, dict):
                errors.append("%s: expected object (%s), got %s" % (where, name, json_type(value)))
                return
            props = schema.get("properties", {})
            if schema.get("additionalProperties") is not True:
                for key in value:
                    if key not in props:
                        errors.append("%s: unknown property `%s` (%s declares: %s)"
                                      % (where, key, name, ", ".join(sorted(props)) or "none"))
            if enforce_required:
                for key in schema.get("required", []):
                    if key not in value:
                        errors.append("%s: missing required property `%s` (%s)" % (where, key, name))
            for key, sub in props.items():
                if key in value:
                    self.validate(value[key], sub, join(where, key), errors)
            return

        if stype == "array":
            if not isinstance(value, list):
                errors.append("%s: expected array, got %s" % (where, json_type(value)))
                return
            items = schema.get("items")
            if items is not None:
                for i, element in enumerate(value):
                    self.validate(element, items, "%s[%d]" % (where, i), errors)
            return

        if stype == "string":
            ok = isinstance(value, str)
        elif stype == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif stype == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif stype == "boolean":
            ok = isinstance(value, bool)
        elif stype is None:
            ok = True
        else:
            errors.append("%s: schema type %r not supported by the checker" % (where, stype))
            return
        if not ok:
            errors.append("%s: expected %s, got %s" % (where, stype, json_type(value)))
            return
        if "enum" in schema and value not in schema["enum"]:
            errors.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r is below the minimum %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r is above the maximum %r" % (where, value, schema["maximum"]))

    def check_request(self, request):
        """Returns the list of violations of one logged request."""
        errors = []
        if not isinstance(request, dict):
            return ["log entry is not a JSON object"]
        method = request.get("method")
        full_path = request.get("path")
        if not isinstance(method, str) or not isinstance(full_path, str):
            return ["log entry lacks a string `method` and `path`"]
        path = full_path.split("?", 1)[0]
        body = request.get("body")

        template, params, item = self.find(path)
        if template is None:
            return ["path %s is not in the Swagger" % path]
        operation = item.get(method.lower())
        if method.lower() not in HTTP_METHODS or operation is None:
            return ["method %s is not defined for %s" % (method, template)]

        for param in operation.get("parameters", []):
            if param.get("in") == "path":
                value = params.get(param["name"])
                if param.get("required") and not value:
                    errors.append("path parameter `%s` is empty" % param["name"])
        if request.get("body_invalid_json"):
            return errors + ["the request body is not valid JSON"]

        body_params = [p for p in operation.get("parameters", []) if p.get("in") == "body"]
        if not body_params:
            if body is not None:
                errors.append("%s %s takes no body" % (method, template))
            return errors
        param = body_params[0]
        if body is None:
            if param.get("required"):
                errors.append("%s %s requires a body" % (method, template))
            return errors
        partial = (method.lower(), template) in PARTIAL_BODY_OPERATIONS
        self.validate(body, param["schema"], "body", errors, enforce_required=not partial)
        return errors


def join(where, key):
    return "%s.%s" % (where, key)


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def load_contract(path):
    with open(path, encoding="utf-8") as f:
        return Contract(yaml.safe_load(f))


def check_logs(contract, logs):
    passed = failed = 0
    for log in logs:
        try:
            f = open(log, encoding="utf-8")
        except OSError as e:
            print("%s: cannot read: %s" % (log, e))
            failed += 1
            continue
        with f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except ValueError as e:
                    print("%s:%d: unparsable log line: %s" % (log, lineno, e))
                    failed += 1
                    continue
                errors = contract.check_request(request)
                label = "%s %s" % (request.get("method"), request.get("path")) \
                    if isinstance(request, dict) else "?"
                for e in errors:
                    print("%s:%d: %s: %s" % (log, lineno, label, e))
                if errors:
                    failed += 1
                else:
                    passed += 1
    print("%d passed, %d failed" % (passed, failed))
    if passed + failed == 0:
        print("no requests were checked: an empty log proves nothing")
        return 1
    return 1 if failed else 0


# (method, path, body, expected_valid); every bad case breaks one rule.
SELF_TEST_CASES = [
    ("GET", "/", None, True),
    ("GET", "/version", None, True),
    ("GET", "/vm/config", None, True),
    ("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}, True),
    ("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                                "track_dirty_pages": True, "huge_pages": "None",
                                "cpu_template": "None"}, True),
    ("PATCH", "/machine-config", {"mem_size_mib": 512}, True),
    ("PUT", "/boot-source", {"kernel_image_path": "/k", "boot_args": "console=ttyS0"}, True),
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True, "path_on_host": "/r",
                               "is_read_only": False, "cache_type": "Writeback", "io_engine": "Sync",
                               "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 100},
                                                "ops": {"size": 1, "refill_time": 1,
                                                        "one_time_burst": 0}}}, True),
    ("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/r2"}, True),
    ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                         "guest_mac": "06:00:00:00:00:01", "mtu": 1500}, True),
    ("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0", "rx_rate_limiter": {}}, True),
    ("PUT", "/actions", {"action_type": "InstanceStart"}, True),
    ("PATCH", "/vm", {"state": "Paused"}, True),
    ("PUT", "/snapshot/create", {"snapshot_path": "/s", "mem_file_path": "/m",
                                 "snapshot_type": "Full"}, True),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s", "mem_backend": {"backend_type": "File",
                                                                      "backend_path": "/m"},
                               "resume_vm": True,
                               "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}]},
     True),
    ("PUT", "/logger", {"level": "Info", "log_path": "/l", "show_level": True}, True),
    ("PUT", "/metrics", {"metrics_path": "/m"}, True),
    ("PUT", "/mmds", {"anything": {"goes": [1, 2]}}, True),  # additionalProperties: true

    ("GET", "/nonexistent", None, False),                     # unknown path
    ("DELETE", "/drives/rootfs", None, False),                # unknown method
    ("POST", "/actions", {"action_type": "InstanceStart"}, False),
    ("GET", "/", {"x": 1}, False),                            # GET takes no body
    ("PUT", "/actions", None, False),                         # required body missing
    ("PUT", "/actions", {"action_type": "Reboot"}, False),    # bad enum
    ("PUT", "/actions", {"action_type": "InstanceStart", "x": 1}, False),  # unknown field
    ("PUT", "/machine-config", {"vcpu_count": 2}, False),     # missing required
    ("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 256}, False),  # type
    ("PUT", "/machine-config", {"vcpu_count": True, "mem_size_mib": 256}, False),  # bool != int
    ("PUT", "/machine-config", {"vcpu_count": 2.0, "mem_size_mib": 256}, False),  # float != int
    ("PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 256}, False),    # minimum
    ("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 256}, False),   # maximum
    ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256, "cpu_template": "X"}, False),
    ("PATCH", "/machine-config", {"bogus": 1}, False),        # partial, but still closed
    ("PUT", "/machine-config", [1, 2], False),                # not an object
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": "yes"}, False),
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True,
                               "rate_limiter": {"bandwidth": {"size": 1}}}, False),  # nested required
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True,
                               "rate_limiter": {"bandwidth": {"size": -1, "refill_time": 1}}}, False),
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True,
                               "rate_limiter": {"burst": {}}}, False),  # nested unknown field
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "is_root_device": True, "partuuid": None}, False),
    ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0", "mtu": 67}, False),
    ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                         "mtu": 65536}, False),
    ("PATCH", "/vm", {"state": "Running"}, False),
    ("PUT", "/snapshot/create", {"snapshot_path": "/s"}, False),
    ("PUT", "/snapshot/create", {"snapshot_path": "/s", "mem_file_path": "/m",
                                 "snapshot_type": "Incremental"}, False),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s", "mem_backend": {"backend_type": "Memfd",
                                                                      "backend_path": "/m"}}, False),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s", "mem_file_path": "/m",
                               "network_overrides": [{"iface_id": "eth0"}]}, False),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s", "mem_file_path": "/m",
                               "network_overrides": {"iface_id": "eth0", "host_dev_name": "t"}}, False),
    ("PUT", "/snapshot/load", {"snapshot_path": "/s", "mem_file_path": "/m",
                               "vsock_override": {"path": "/v"}}, False),
    ("PUT", "/logger", {"level": "Loud"}, False),
]


def self_test(contract):
    wrong = 0
    for method, path, body, expected_valid in SELF_TEST_CASES:
        errors = contract.check_request({"method": method, "path": path, "body": body})
        if (not errors) != expected_valid:
            wrong += 1
            print("self-test: %s %s %s: expected %s, checker said %s"
                  % (method, path, json.dumps(body), "valid" if expected_valid else "invalid",
                     errors or "valid"))
    # The log reader itself must refuse an empty log, and fail a bad line.
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.log")
        bad_log = os.path.join(tmp, "bad.log")
        open(empty, "w").close()
        with open(bad_log, "w") as f:
            f.write(json.dumps({"method": "PUT", "path": "/vm", "body": {"state": "Paused"}}) + "\n")
            f.write(json.dumps({"method": "PUT", "path": "/actions", "body": {}}) + "\n")
        with contextlib.redirect_stdout(io.StringIO()):
            empty_rc = check_logs(contract, [empty])
            bad_rc = check_logs(contract, [bad_log])
    if empty_rc != 1:
        wrong += 1
        print("self-test: an empty log was not rejected")
    if bad_rc != 1:
        wrong += 1
        print("self-test: a log with bad requests was not rejected")
    bad = sum(1 for c in SELF_TEST_CASES if not c[3])
    print("self-test: %d cases (%d must be caught), %d wrong"
          % (len(SELF_TEST_CASES), bad, wrong))
    return 1 if wrong else 0


def main(argv):
    args = argv[1:]
    if args and args[0] == "--self-test":
        if len(args) != 2:
            sys.stderr.write(__doc__)
            return 2
        return self_test(load_contract(args[1]))
    if len(args) < 2:
        sys.stderr.write(__doc__)
        return 2
    return check_logs(load_contract(args[0]), args[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
