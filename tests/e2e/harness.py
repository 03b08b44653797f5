"""harness.py - run a real `auteur serve` on a free loopback port with a temporary data
directory, talk to it with the standard library only, and check MP4 files with ffprobe.

The binary comes from $AUTEUR_BIN (set by ctest). A server is started with --port 0 and
the port read from its "listening on" line, so tests never race for a port. Each test file
is a script: `run_tests(globals())` runs its test_* functions in order and exits 0, 1 on a
failure, or 77 (skipped) when a prerequisite is missing.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

SKIP = 77


def skip(reason):
    print("skipped: " + reason)
    sys.exit(SKIP)


# AUTEUR_* variables a test process inherits; ctest sets AUTEUR_MODEL to the small random model.
KEPT_ENV = ("AUTEUR_BIN", "AUTEUR_SOURCE_DIR", "AUTEUR_BUILD_DIR", "AUTEUR_MODEL")


def binary():
    path = os.environ.get("AUTEUR_BIN")
    if not path or not os.path.exists(path):
        skip("AUTEUR_BIN does not name a built auteur binary")
    return os.path.abspath(path)


class CheckFailed(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise CheckFailed(message)


def check_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: got %r, expected %r" % (what, got, want))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def error(self):
        """The error envelope, checked for shape."""
        obj = self.json()
        check("error" in obj, "no error envelope in %r" % obj)
        err = obj["error"]
        for key in ("message", "type", "param", "code"):
            check(key in err, "error envelope lacks %r: %r" % (key, obj))
        return err

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def multipart(fields, files=None):
    """Encode fields {name: str} and files {name: (filename, bytes, type)} as
    multipart/form-data; returns (body, content_type)."""
    boundary = "----auteur" + uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, name)).encode())
        out.append(str(value).encode("utf-8") + b"\r\n")
    for name, (filename, data, ctype) in (files or {}).items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, name, filename, ctype)).encode())
        out.append(data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


_servers = []


@atexit.register
def _stop_leftovers():
    for server in _servers:
        server.cleanup()


class Server:
    """One `auteur serve` process. Extra flags go in args; env adds variables."""

    def __init__(self, *args, data_dir=None, env=None, start_timeout=120):
        self.bin = binary()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="auteur-e2e-")
        self.args = list(args)
        self.env = dict(os.environ)
        for key in list(self.env):
            if key.startswith("AUTEUR_") and key not in KEPT_ENV:
                del self.env[key]
        self.env.update(env or {})
        self.start_timeout = start_timeout
        self.proc = None
        self.api_key = None
        self.runs = 0
        _servers.append(self)

    def start(self):
        self.runs += 1
        self.out_path = os.path.join(self.data_dir, "stdout.%d.log" % self.runs)
        self.err_path = os.path.join(self.data_dir, "stderr.%d.log" % self.runs)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([self.bin, "serve", "--port", "0", "--data-dir", self.data_dir] + self.args,
                                         stdout=out, stderr=err, env=self.env)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            with open(self.out_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if "listening on http://" in line:
                    self.port = int(line.rsplit(":", 1)[1])
                    self.base = "http://127.0.0.1:%d" % self.port
                    return self
            if self.proc.poll() is not None:
                raise CheckFailed("auteur serve exited with %d before listening:\n%s" % (self.proc.returncode,
                                                                                          self.stderr()))
            time.sleep(0.05)
        raise CheckFailed("auteur serve did not listen within %d s:\n%s" % (self.start_timeout, self.stderr()))

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, json_body=None, timeout=30):
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.api_key and "Authorization" not in headers:
            headers["Authorization"] = "Bearer " + self.api_key
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def create(self, **fields):
        r = self.request("POST", "/v1/videos", json_body=fields)
        check(r.status == 200, "create %r: %r" % (fields, r))
        return r.json()

    def get(self, video_id):
        r = self.request("GET", "/v1/videos/" + video_id)
        check(r.status == 200, "get %s: %r" % (video_id, r))
        return r.json()

    def wait(self, video_id, statuses=("completed", "failed"), timeout=120, poll=0.1):
        deadline = time.time() + timeout
        while True:
            v = self.get(video_id)
            if v["status"] in statuses:
                return v
            if time.time() > deadline:
                raise CheckFailed("video %s still %s (progress %s) after %d s\n%s" % (
                    video_id, v["status"], v["progress"], timeout, self.stderr()[-3000:]))
            time.sleep(poll)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise CheckFailed("auteur serve did not exit within %d s of signal %d" % (timeout, sig))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def raw_http(port, data, timeout=10):
    """Send raw bytes, return whatever comes back before the server closes or times out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)
    finally:
        s.close()


def ffprobe(path):
    """codec, profile, pix_fmt, width, height, fps (float) and the decoded frame count."""
    if not shutil.which("ffprobe"):
        skip("ffprobe not installed")
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_read_frames:format=format_name",
                          "-of", "json", path], capture_output=True, text=True)
    check(out.returncode == 0, "ffprobe %s failed: %s" % (path, out.stderr))
    info = json.loads(out.stdout)
    st = info["streams"][0]
    num, den = st["r_frame_rate"].split("/")
    return {"codec": st["codec_name"], "profile": st.get("profile"), "pix_fmt": st.get("pix_fmt"),
            "width": st["width"], "height": st["height"], "fps": float(num) / float(den),
            "frames": int(st["nb_read_frames"]), "format": info["format"]["format_name"]}


def moov_before_mdat(data):
    """True when the MP4's moov box precedes mdat (+faststart)."""
    pos = 0
    order = []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        order.append(kind)
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size < 8:
            break
        pos += size
    return b"moov" in order and b"mdat" in order and order.index(b"moov") < order.index(b"mdat")


def run_tests(namespace):
    tests = [(name, fn) for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    failed = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            print("ok   %s (%.1f s)" % (name, time.time() - t0), flush=True)
        except SystemExit:
            raise
        except Exception:  # report every failing test, not only the first
            failed += 1
            print("FAIL %s (%.1f s)\n%s" % (name, time.time() - t0, traceback.format_exc()), flush=True)
    sys.exit(1 if failed else 0)
