"""test_errors.py - every error status of the API, each with the {"error": {message, type,
param, code}} envelope: 400 (bad JSON, each bad field named in param, bad query), 401 (API
keys), 404 (unknown routes and ids, path tricks), 405 (with Allow), 409 (content not ready),
413 (body over the stated limit), 415, 429 (queue full), 500 (a completed video's file gone),
503 (no engine); and malformed requests that must not crash or wedge the server.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, check, check_eq, multipart, raw_http, run_tests  # noqa: E402

LONG = {"size": "256x256", "frames": 17, "steps": 40}  # several seconds on the tiny model
server = Server("--max-queue", "2", "--max-body", "65536").start()


def expect(r, status, param=None, code=None):
    check_eq(r.status, status, "status of %r" % r)
    err = r.error()
    check(err["message"], "error message is empty")
    if param is not None:
        check_eq(err["param"], param, "param of %r" % r)
    if code is not None:
        check_eq(err["code"], code, "code of %r" % r)
    return err


def post_raw(path, body, ctype="application/json", srv=None):
    return (srv or server).request("POST", path, body=body, headers={"Content-Type": ctype})


def test_400_bad_json_and_fields():
    expect(post_raw("/v1/videos", b"{\"prompt\": "), 400, code="invalid_json")
    expect(post_raw("/v1/videos", b"[1, 2]"), 400)
    expect(post_raw("/v1/videos", b""), 400)
    expect(post_raw("/v1/videos", b"{\"prompt\": \"\xff\xfe\"}"), 400)
    bad = [({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": 3}, "prompt"),
           ({"prompt": "x" * 2001}, "prompt"), ({"prompt": "x", "model": "sora-2"}, "model"),
           ({"prompt": "x", "size": "100x100"}, "size"), ({"prompt": "x", "size": "512x512"}, "size"),
           ({"prompt": "x", "size": "64by64"}, "size"), ({"prompt": "x", "seconds": "forever"}, "seconds"),
           ({"prompt": "x", "seconds": "60"}, "seconds"), ({"prompt": "x", "frames": 8}, "frames"),
           ({"prompt": "x", "frames": 37}, "frames"), ({"prompt": "x", "steps": 0}, "steps"),
           ({"prompt": "x", "steps": 51}, "steps"), ({"prompt": "x", "guidance_scale": -1}, "guidance_scale"),
           ({"prompt": "x", "shift": 0}, "shift"), ({"prompt": "x", "sampler": "ddpm"}, "sampler"),
           ({"prompt": "x", "seed": -2}, "seed"), ({"prompt": "x", "fps": 0}, "fps"),
           ({"prompt": "x", "negative_prompt": 5}, "negative_prompt"),
           ({"prompt": "x", "input_reference": "cat.png"}, "input_reference"), ({"prompt": "x", "colour": 1}, "colour")]
    for fields, param in bad:
        expect(server.request("POST", "/v1/videos", json_body=fields), 400, param=param)
    body, ctype = multipart({"prompt": "x", "steps": "many"})
    expect(post_raw("/v1/videos", body, ctype), 400, param="steps")
    body, ctype = multipart({"prompt": "x"}, files={"input_reference": ("a.png", b"\x89PNG", "image/png")})
    expect(post_raw("/v1/videos", body, ctype), 400, param="input_reference")
    expect(post_raw("/v1/videos", b"--nope\r\n", "multipart/form-data; boundary=b"), 400, code="invalid_multipart")
    expect(post_raw("/v1/videos", b"x", "multipart/form-data"), 400, code="invalid_multipart")
    expect(server.request("GET", "/v1/videos?limit=0"), 400, param="limit")
    expect(server.request("GET", "/v1/videos?limit=101"), 400, param="limit")
    expect(server.request("GET", "/v1/videos?order=sideways"), 400, param="order")
    expect(server.request("GET", "/v1/videos?after=nonsense"), 400, param="after")
    expect(server.request("GET", "/v1/videos?after=video_" + "0" * 32), 400, param="after")


def test_404_unknown_routes_and_ids():
    for path in ("/", "/v1", "/v1/videos/", "/v2/videos", "/v1/videos/%s/extra" % ("video_" + "0" * 32),
                 "/v1/videos/" + "video_" + "0" * 32, "/v1/videos/not-an-id", "/v1/videos/video_" + "a" * 500,
                 "/v1/videos/..%2F..%2Fauteur.db/content", "/v1/videos/%2e%2e/content",
                 "/v1/videos/video_" + "0" * 32 + "/content"):
        expect(server.request("GET", path), 404)
    expect(server.request("DELETE", "/v1/videos/video_" + "f" * 32), 404, param="video_id")


def test_405_wrong_method():
    for method, path, allow in (("PUT", "/v1/videos", "GET, HEAD, POST"),
                                ("PATCH", "/v1/videos/video_" + "0" * 32, "GET, HEAD, DELETE"),
                                ("POST", "/v1/videos/video_" + "0" * 32 + "/content", "GET, HEAD"),
                                ("GET", "/v1/videos/video_" + "0" * 32 + "/remix", "POST"),
                                ("DELETE", "/v1/models", "GET, HEAD"), ("POST", "/health", "GET, HEAD")):
        r = server.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None)
        expect(r, 405, code="method_not_allowed")
        check_eq(r.headers.get("allow"), allow, "Allow for %s %s" % (method, path))


def test_409_content_before_completion_and_429_queue_full():
    first = server.create(prompt="long one", **LONG)
    r = server.request("GET", "/v1/videos/%s/content" % first["id"])
    expect(r, 409, code="video_not_ready")
    second = server.create(prompt="waits", **LONG)
    r = server.request("POST", "/v1/videos", json_body={"prompt": "one too many"})
    err = expect(r, 429, code="queue_full")
    check_eq(err["type"], "rate_limit_error", "429 type")
    r = server.request("POST", "/v1/videos/%s/remix" % first["id"], json_body={"prompt": "also too many"})
    expect(r, 429)
    for v in (first, second):
        check_eq(server.request("DELETE", "/v1/videos/" + v["id"]).status, 200, "cancel")
    # the slots are free again
    v = server.create(prompt="fits now", size="16x16", frames=1, steps=1)
    check_eq(server.wait(v["id"])["status"], "completed", "queue drained")


def test_413_body_over_the_limit():
    big = b'{"prompt": "' + b"x" * 70000 + b'"}'
    err = expect(post_raw("/v1/videos", big), 413, code="request_too_large")
    check("65536" in err["message"], "the limit is stated: " + err["message"])
    # a declared length far past the limit is refused before any body is read
    reply = raw_http(server.port, b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 100000000\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 413"), "huge Content-Length: %r" % reply[:80])
    check_eq(server.request("GET", "/health").status, 200, "alive after 413s")


def test_415_content_type():
    expect(post_raw("/v1/videos", b"prompt=x", "application/x-www-form-urlencoded"), 415,
           code="unsupported_media_type")
    expect(post_raw("/v1/videos", b"{}", "text/plain"), 415)
    r = server.request("POST", "/v1/videos", body=b'{"prompt":"x"}', headers={"Content-Type": ""})
    expect(r, 415)


def test_500_completed_video_without_its_file():
    v = server.create(prompt="to lose", size="16x16", frames=1, steps=1)
    server.wait(v["id"])
    os.unlink(os.path.join(server.data_dir, "videos", v["id"] + ".mp4"))
    expect(server.request("GET", "/v1/videos/%s/content" % v["id"]), 500, code="content_missing")
    check_eq(server.request("DELETE", "/v1/videos/" + v["id"]).status, 200, "still deletable")


def test_malformed_requests_do_not_wedge():
    junk = [b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
            b"GET /v1/videos HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 200000 + b"\r\n\r\n",
            b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{",
            b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n",
            b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"]
    for data in junk:
        raw_http(server.port, data, timeout=1)
    check_eq(server.request("GET", "/health").status, 200, "alive after junk")
    # a body sent in chunks is accepted like any other
    payload = b'{"prompt": "chunked", "steps": 1, "size": "16x16", "frames": 1}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 7]), payload[i:i + 7]) for i in range(0, len(payload), 7))
    reply = raw_http(server.port, b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 200"), "chunked create: %r" % reply[:200])


def test_401_api_keys():
    with Server("--api-key", "k-one", "--api-key", "k-two") as s:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "k-one"},
                        {"Authorization": "Basic k-one"}, {"Authorization": "Bearer k-one2"}):
            r = s.request("GET", "/v1/videos", headers=headers)
            expect(r, 401, code="invalid_api_key")
            check(r.headers.get("www-authenticate", "").startswith("Bearer"), "WWW-Authenticate")
        expect(s.request("POST", "/v1/videos", json_body={"prompt": "x"}), 401)
        expect(s.request("GET", "/v1/models"), 401)
        expect(s.request("GET", "/no/such/route"), 401)
        for key in ("k-one", "k-two"):
            check_eq(s.request("GET", "/v1/videos", headers={"Authorization": "Bearer " + key}).status, 200, key)
        check_eq(s.request("GET", "/health").status, 200, "/health is open")
        check_eq(s.request("GET", "/metrics").status, 200, "/metrics is open")
    with Server(env={"AUTEUR_API_KEYS": "e1,e2"}) as s:
        expect(s.request("GET", "/v1/videos"), 401)
        check_eq(s.request("GET", "/v1/videos", headers={"Authorization": "Bearer e2"}).status, 200, "env key")


def test_503_no_engine():
    with Server("--model", "/nonexistent/model") as s:
        err = expect(s.request("POST", "/v1/videos", json_body={"prompt": "x"}), 503, code="engine_unavailable")
        check("/nonexistent/model" in err["message"], "names the model: " + err["message"])
        h = s.request("GET", "/health")
        check_eq(h.status, 503, "health without an engine")
        report = h.json()
        check_eq((report["status"], report["model"]["loaded"]), ("degraded", False), "health report")
        check(report["model"]["error"], "health says why")
        check_eq(s.request("GET", "/v1/models").json()["data"], [], "no models")
        check_eq(s.request("GET", "/v1/videos").status, 200, "listing still works")
        check("auteur_model_loaded 0" in s.request("GET", "/metrics").body.decode(), "metrics")


def test_zz_server_survived():
    check_eq(server.request("GET", "/health").status, 200, "alive at the end")
    check_eq(server.stop(), 0, "clean exit")


run_tests(globals())
