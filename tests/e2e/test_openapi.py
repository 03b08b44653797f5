"""test_openapi.py - api/openapi.yaml tells the truth: every documented path and method is
routed by the server (never "no route" or 405), methods it does not document are 405, and
every documented CreateVideoRequest property is a field the server knows (a bad value is
rejected naming that field, never as an unknown parameter). Standard library only: the
document is read by its indentation, which the file keeps regular.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, check, check_eq, run_tests  # noqa: E402

SOURCE = os.environ.get("AUTEUR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
with open(os.path.join(SOURCE, "api", "openapi.yaml"), encoding="utf-8") as f:
    DOC = f.read().splitlines()

server = Server().start()
SAMPLE_ID = "video_" + "0" * 32


def documented_operations():
    ops, path = [], None
    for line in DOC:
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            path = m.group(1)
            continue
        if re.match(r"^\S", line):
            path = None
        m = re.match(r"^    (get|post|delete|put|patch):\s*$", line)
        if m and path:
            ops.append((m.group(1).upper(), path))
    return ops


def create_request_properties():
    props, inside, in_props = [], False, False
    for line in DOC:
        if re.match(r"^    CreateVideoRequest:\s*$", line):
            inside = True
            continue
        if inside and re.match(r"^    \S", line):
            break
        if inside and re.match(r"^      properties:\s*$", line):
            in_props = True
            continue
        m = re.match(r"^        (\w+):", line)
        if inside and in_props and m:
            props.append(m.group(1))
    return props


def test_every_documented_operation_is_routed():
    ops = documented_operations()
    check(len(ops) >= 9, "found the operations: %r" % ops)
    for method, path in ops:
        url = path.replace("{video_id}", SAMPLE_ID)
        body = b"{}" if method == "POST" else None
        r = server.request(method, url, body=body, headers={"Content-Type": "application/json"})
        check(r.status not in (405,) and not (r.status == 404 and b"unknown_url" in r.body),
              "%s %s is documented but not routed: %r" % (method, path, r))
    documented = set(ops)
    for method in ("GET", "POST", "DELETE", "PUT"):
        for _, path in ops:
            if (method, path) in documented:
                continue
            url = path.replace("{video_id}", SAMPLE_ID)
            r = server.request(method, url, body=b"" if method in ("POST", "PUT") else None)
            check_eq(r.status, 405, "%s %s is not documented, so it must be 405" % (method, path))


def test_documented_fields_are_the_accepted_fields():
    props = create_request_properties()
    check_eq(sorted(props), sorted(["prompt", "model", "seconds", "size", "negative_prompt", "seed", "steps",
                                    "guidance_scale", "shift", "sampler", "fps", "frames"]), "documented fields")
    for name in props:
        fields = {"prompt": "x", name: ["not", "valid"]}
        r = server.request("POST", "/v1/videos", json_body=fields)
        check_eq(r.status, 400, "bad %s" % name)
        err = r.error()
        check_eq(err["param"], name, "param for a bad %s" % name)
        check(err["code"] != "unknown_parameter", "%s is known to the server" % name)


def test_zz_stop():
    check_eq(server.stop(), 0, "clean exit")


run_tests(globals())
