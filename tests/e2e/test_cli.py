"""test_cli.py - the `auteur` command line: generate (an MP4 checked with ffprobe, a
thumbnail, the same validation as the API, no file on a bad request), migrate on an empty
data directory and again, health against a running server and against none, --help and
--version on every command, and exit code 2 with a message for unknown flags and bad values.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import KEPT_ENV, Server, binary, check, check_eq, ffprobe, run_tests  # noqa: E402

BIN = binary()
WORK = tempfile.mkdtemp(prefix="auteur-cli-")
COMMANDS = ("serve", "generate", "migrate", "health", "dev")


def run(*args, env=None, timeout=120):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTEUR_") or k in KEPT_ENV}
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout, env=e, cwd=WORK)


def test_generate_writes_a_checked_mp4():
    out = os.path.join(WORK, "clip.mp4")
    thumb = os.path.join(WORK, "clip.png")
    r = run("generate", "--prompt", "a lighthouse at dusk", "--size", "48x32", "--frames", "5", "--fps", "10",
            "--steps", "2", "--seed", "3", "--guidance-scale", "3.5", "--sampler", "euler", "-o", out,
            "--thumbnail", thumb)
    check_eq(r.returncode, 0, "generate exit code: " + r.stderr)
    check("wrote " + out in r.stderr, "summary line: " + r.stderr)
    info = ffprobe(out)
    check_eq((info["codec"], info["width"], info["height"], info["frames"], info["fps"]), ("h264", 48, 32, 5, 10.0),
             "decoded")
    with open(thumb, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "PNG thumbnail")
    check_eq(sorted(os.listdir(WORK)), ["clip.mp4", "clip.png"], "no partial files")
    # same seed and parameters: the same video
    again = os.path.join(WORK, "again.mp4")
    r = run("generate", "-p", "a lighthouse at dusk", "--size", "48x32", "--frames", "5", "--fps", "10", "--steps",
            "2", "--seed", "3", "--guidance-scale", "3.5", "--sampler", "euler", "-o", again)
    check_eq(r.returncode, 0, r.stderr)
    decoded = [subprocess.run(["ffmpeg", "-v", "error", "-i", p, "-f", "rawvideo", "-"], capture_output=True).stdout
               for p in (out, again)]
    check(decoded[0] and decoded[0] == decoded[1], "deterministic for a seed")
    os.unlink(again)


def test_generate_seconds_and_defaults():
    out = os.path.join(WORK, "secs.mp4")
    r = run("generate", "--prompt", "rain", "--seconds", "1", "--steps", "1", "-o", out)
    check_eq(r.returncode, 0, r.stderr)
    info = ffprobe(out)
    check_eq((info["width"], info["height"], info["fps"], info["frames"]), (64, 64, 8.0, 9),
             "model defaults, 1 s at 8 fps = 9 frames")
    os.unlink(out)


def test_generate_bad_values_exit_2_without_a_file():
    out = os.path.join(WORK, "never.mp4")
    for args, needle in ((["--size", "50x50"], "--size"), (["--frames", "8"], "--frames"),
                         (["--steps", "0"], "--steps"), (["--steps", "500"], "--steps"),
                         (["--sampler", "ddim"], "--sampler"), (["--seed", "-3"], "--seed"),
                         (["--guidance-scale", "lots"], "--guidance-scale"), (["--fps", "0"], "--fps"),
                         (["--bogus", "1"], "--bogus"), (["--thumbnail", "t.gif"], "--thumbnail")):
        r = run("generate", "--prompt", "x", "-o", out, *args)
        check_eq(r.returncode, 2, "exit code for %r: %s" % (args, r.stderr))
        check(needle in r.stderr, "message names %s: %s" % (needle, r.stderr))
        check(not os.path.exists(out), "no file for %r" % args)
    r = run("generate", "-o", out)
    check_eq(r.returncode, 2, "missing prompt")
    check("--prompt" in r.stderr, r.stderr)
    r = run("generate", "--prompt", "x", "--model", "/nonexistent", "-o", out)
    check_eq(r.returncode, 1, "a missing model is a failure, not a usage error")
    check("/nonexistent" in r.stderr, r.stderr)


def test_help_version_and_usage_errors():
    for cmd in COMMANDS:
        r = run(cmd, "--help")
        check_eq(r.returncode, 0, "%s --help: %s" % (cmd, r.stderr))
        check("usage" in (r.stdout + r.stderr).lower(), "%s --help prints usage" % cmd)
    for cmd in ("serve", "generate", "migrate", "health"):
        r = run(cmd, "--version")
        check_eq((r.returncode, r.stdout.split()[0]), (0, "auteur"), "%s --version" % cmd)
        r = run(cmd, "--no-such-flag")
        check_eq(r.returncode, 2, "%s unknown flag" % cmd)
        check("--no-such-flag" in r.stderr, r.stderr)
    for args in (["--version"], ["-h"]):
        check_eq(run(*args).returncode, 0, repr(args))
    check_eq(run().returncode, 2, "no command")
    r = run("explode")
    check_eq(r.returncode, 2, "unknown command")
    check("explode" in r.stderr, r.stderr)
    for args in (["--port", "70000"], ["--port", "eighty"], ["--max-queue", "0"], ["--device", "tpu"],
                 ["--retention-hours", "-1"], ["--port"]):
        r = run("serve", *args)
        check_eq(r.returncode, 2, "serve %r: %s" % (args, r.stderr))
        check(args[0] in r.stderr, "names the flag: " + r.stderr)
    r = run("serve", env={"AUTEUR_PORT": "not-a-port"})
    check_eq(r.returncode, 2, "bad environment value")
    check("AUTEUR_PORT" in r.stderr, r.stderr)


def test_migrate():
    d = os.path.join(WORK, "data-m")
    r = run("migrate", "--data-dir", d)
    check_eq(r.returncode, 0, r.stderr)
    check("from schema version 0 to" in r.stdout, r.stdout)
    check(os.path.exists(os.path.join(d, "auteur.db")), "database created")
    r = run("migrate", env={"AUTEUR_DATA_DIR": d})
    check_eq(r.returncode, 0, r.stderr)
    check("up to date" in r.stdout, r.stdout)
    # a data dir that is a file
    f = os.path.join(WORK, "plain-file")
    open(f, "w").close()
    r = run("migrate", "--data-dir", f)
    check_eq(r.returncode, 1, "migrate into a file")


def test_health_command():
    with Server() as s:
        r = run("health", "--port", str(s.port))
        check_eq(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        check_eq((report["status"], report["model"]["name"]), ("ok", "tiny-random"), "report")
        r = run("health", env={"AUTEUR_PORT": str(s.port), "AUTEUR_HOST": "0.0.0.0"})
        check_eq(r.returncode, 0, "from the environment: " + r.stderr)
    with Server("--model", "/nonexistent") as s:
        r = run("health", "--port", str(s.port))
        check_eq(r.returncode, 1, "degraded server")
        check_eq(json.loads(r.stdout)["status"], "degraded", "report still printed")
    r = run("health", "--port", str(s.port), "--timeout", "2")
    check_eq(r.returncode, 1, "no server")
    check("cannot connect" in r.stderr, r.stderr)


run_tests(globals())
