"""test_jobs.py - the job lifecycle under stress: cancelling queued and running jobs (no file
left), FIFO order, kill -9 during a generation then a restart (the job is requeued and
completes), three lost attempts (the job fails with a reason), SIGTERM with a running job
(finished within the grace period, or put back in the queue and finished after a restart).
"""

import glob
import os
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CheckFailed, Server, check, check_eq, run_tests  # noqa: E402

LONG = {"size": "256x256", "frames": 17, "steps": 40}  # several seconds on the tiny model
TINY = {"size": "16x16", "frames": 1, "steps": 1}
MEDIUM = {"size": "256x256", "frames": 17, "steps": 16}  # a few seconds


def files_of(server, vid):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(server.data_dir, "videos", vid + "*")))


def all_files(server):
    return sorted(os.listdir(os.path.join(server.data_dir, "videos")))


def attempts(server, vid):
    db = sqlite3.connect(os.path.join(server.data_dir, "auteur.db"))
    try:
        return db.execute("SELECT attempts FROM videos WHERE id = ?", (vid,)).fetchone()[0]
    finally:
        db.close()


def wait_running(server, vid, min_progress=1, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = server.get(vid)
        if v["status"] == "in_progress" and v["progress"] >= min_progress:
            return v
        check(v["status"] in ("queued", "in_progress"), "job ended early: %r" % v)
        time.sleep(0.05)
    raise AssertionError("job %s never reached progress %d" % (vid, min_progress))


def test_cancel_queued_and_running_fifo():
    with Server() as s:
        running = s.create(prompt="runs", **LONG)
        queued = [s.create(prompt="q%d" % i, **TINY) for i in range(3)]
        wait_running(s, running["id"])
        # a queued job: gone at once, never run
        r = s.request("DELETE", "/v1/videos/" + queued[1]["id"])
        check_eq(r.json()["deleted"], True, "deleted queued job")
        check_eq(s.request("GET", "/v1/videos/" + queued[1]["id"]).status, 404, "queued job gone")
        # the running job: the engine stops between steps, nothing is written
        r = s.request("DELETE", "/v1/videos/" + running["id"])
        check_eq(r.status, 200, "cancel running job")
        check_eq(s.request("GET", "/v1/videos/" + running["id"]).status, 404, "running job gone")
        # the others still run, in order of creation
        done = [s.wait(q["id"]) for q in (queued[0], queued[2])]
        check(all(d["status"] == "completed" for d in done), "remaining jobs complete")
        check(done[0]["completed_at"] <= done[1]["completed_at"], "FIFO")
        check_eq(files_of(s, running["id"]), [], "no file of the cancelled job")
        check_eq(files_of(s, queued[1]["id"]), [], "no file of the deleted queued job")
        check(not any(".part." in f for f in all_files(s)), "no partial files: %r" % all_files(s))
        log = s.stderr()
        check("canceled" in log and running["id"] in log, "cancel logged")
        check(queued[1]["id"] not in log, "the deleted queued job never started")
        check_eq(s.stop(), 0, "clean exit")


def test_kill9_mid_job_then_restart():
    s = Server()
    s.start()
    v = s.create(prompt="survives a crash", **LONG)
    wait_running(s, v["id"], min_progress=10)
    s.kill9()
    s.start()
    done = s.wait(v["id"], timeout=120)
    check_eq(done["status"], "completed", "requeued job completes")
    check_eq(attempts(s, v["id"]), 2, "the lost attempt counted")
    check("requeued" in s.stderr(), "recovery logged: " + s.stderr()[:500])
    check_eq(files_of(s, v["id"]), [v["id"] + ".jpg", v["id"] + ".mp4"], "exactly the final files")
    check_eq(s.stop(), 0, "clean exit")
    s.cleanup()


def test_three_lost_attempts_fail_the_job():
    s = Server()
    s.start()
    v = s.create(prompt="keeps dying", **LONG)
    for attempt in (1, 2, 3):
        wait_running(s, v["id"], min_progress=1)
        check_eq(attempts(s, v["id"]), attempt, "attempt counter")
        s.kill9()
        s.start()
    done = s.wait(v["id"], timeout=30)
    check_eq(done["status"], "failed", "failed after three lost attempts")
    check_eq(done["error"]["code"], "worker_lost", "error code")
    check("3 attempts" in done["error"]["message"], "reason: " + done["error"]["message"])
    check_eq(files_of(s, v["id"]), [], "no files of the failed job")
    r = s.request("GET", "/v1/videos/%s/content" % v["id"])
    check_eq(r.status, 409, "no content for a failed job")
    # the service goes on
    ok = s.create(prompt="next", **TINY)
    check_eq(s.wait(ok["id"])["status"], "completed", "later jobs run")
    check_eq(s.stop(), 0, "clean exit")
    s.cleanup()


def test_sigterm_lets_the_running_job_finish():
    s = Server("--shutdown-grace", "60")
    s.start()
    v = s.create(prompt="finish me", **MEDIUM)
    wait_running(s, v["id"])
    t0 = time.time()
    check_eq(s.stop(signal.SIGTERM, timeout=90), 0, "exit code")
    check(time.time() - t0 < 60, "bounded wait")
    s.start()
    check_eq(s.get(v["id"])["status"], "completed", "finished before the exit")
    check_eq(attempts(s, v["id"]), 1, "one attempt")
    check_eq(s.stop(), 0, "clean exit")
    s.cleanup()


def test_sigterm_requeues_when_grace_runs_out():
    s = Server("--shutdown-grace", "0")
    s.start()
    v = s.create(prompt="come back later", **MEDIUM)
    wait_running(s, v["id"])
    check_eq(s.stop(signal.SIGINT, timeout=60), 0, "exit code after SIGINT")
    check("back in the queue" in s.stderr(), "released: " + s.stderr()[-800:])
    check(not any(".part." in f for f in all_files(s)), "no partial file: %r" % all_files(s))
    s.start()
    done = s.wait(v["id"], timeout=120)
    check_eq(done["status"], "completed", "completes after the restart")
    check_eq(attempts(s, v["id"]), 1, "a shutdown is not a failed attempt")
    check_eq(s.stop(), 0, "clean exit")
    s.cleanup()


def test_retention_deletes_expired_videos():
    with Server("--retention-hours", "0.0005") as s:  # 1.8 s
        v = s.create(prompt="short-lived", **TINY)
        done = s.wait(v["id"])
        check_eq(done["status"], "completed", "status")
        check(done["expires_at"] is not None and 1 <= done["expires_at"] - done["completed_at"] <= 3,
              "expires_at about 1.8 s after completion: %r" % done)
        check_eq(len(files_of(s, v["id"])), 2, "files while not expired")
        deadline = time.time() + 15
        while s.request("GET", "/v1/videos/" + v["id"]).status != 404:
            check(time.time() < deadline, "not deleted after its expiry")
            time.sleep(0.2)
        check_eq(files_of(s, v["id"]), [], "files deleted with the row")
        check_eq(s.stop(), 0, "clean exit")


def test_second_server_on_one_data_dir_is_refused():
    d = tempfile.mkdtemp(prefix="auteur-e2e-")
    a = Server(data_dir=d)
    a.start()
    b = Server(data_dir=d, start_timeout=10)
    started = True
    try:
        b.start()
    except CheckFailed:
        started = False
    check(not started, "a second server started on the same data directory")
    check_eq(b.proc.returncode, 1, "exit code of the refused server")
    check("another auteur serve" in b.stderr(), "refusal names the reason: " + b.stderr())
    check_eq(a.request("GET", "/health").status, 200, "the first one is unaffected")
    check_eq(a.stop(), 0, "clean exit")
    a.cleanup()


run_tests(globals())
