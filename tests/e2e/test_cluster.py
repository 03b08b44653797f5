"""test_cluster.py - two ranks on loopback: `auteur serve --world-size 2` (rank 0) and `auteur
worker` (rank 1) on the CPU backend with the tcp comm and the small random model.

- The video two ranks make equals a single-rank server's for the same seed (decoded frames
  compared), in the cfg and the ulysses modes; /metrics counts the mode and the ranks.
- The worker killed with -9 mid-job, or its link cut (a relay inside the test, closed mid-job):
  the job completes on rank 0 alone in the same attempt, /health shows one rank joined, and the
  worker, started again or reconnecting, rejoins: the next job runs on two ranks.
- A job deleted while it runs on both ranks stops on both, and the next one runs on both again;
  a worker sent SIGTERM mid-job finishes its part, then exits 0.
- A worker stopped with SIGSTOP is found lost within the heartbeat timeout, and rejoins after
  SIGCONT.
- Refusals, with the reason on both sides: a wrong token, another model, another Auteur version
  (a test double speaking the protocol, as a worker and as rank 0); usage errors.
"""

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_peer  # noqa: E402
from harness import CheckFailed, KEPT_ENV, Server, binary, check, check_eq, run_tests, skip  # noqa: E402

HEARTBEAT_S = 2
# bench/cluster_device.sh sets cuda on a machine of two GPUs: each rank then runs on its own GPU
# and the ranks join through NCCL (the failure scenarios only: frames differ within FP8 there).
DEVICE = os.environ.get("AUTEUR_E2E_CLUSTER_DEVICE", "cpu")
COMM = "nccl" if DEVICE == "cuda" else "tcp"


def rank_env(rank):
    return {"CUDA_VISIBLE_DEVICES": str(rank)} if DEVICE == "cuda" else {}

SMALL = {"size": "64x64", "frames": 5, "steps": 4, "seed": 4242, "prompt": "a lighthouse at dusk"}
LONG = {"size": "256x256", "frames": 17, "steps": 30, "seed": 7, "prompt": "waves on rocks"}
SOURCE = os.environ.get("AUTEUR_SOURCE_DIR", os.getcwd())
TMP = tempfile.mkdtemp(prefix="auteur-cluster-")
TOKEN = "e2e-cluster-token-0123456789abcdef"
TOKEN_FILE = os.path.join(TMP, "token")
with open(TOKEN_FILE, "w") as f:
    f.write(TOKEN + "\n")
os.chmod(TOKEN_FILE, 0o600)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(what, cond, timeout=30, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise CheckFailed("timed out after %d s waiting for %s" % (timeout, what))


class Worker:
    """One `auteur worker` process, logging to a file."""

    def __init__(self, port, *args, token_file=TOKEN_FILE):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTEUR_") or k in KEPT_ENV}
        env.update(rank_env(1))
        self.log = tempfile.mktemp(prefix="worker-", suffix=".log", dir=TMP)
        cmd = [binary(), "worker", "--rendezvous", "127.0.0.1:%d" % port, "--cluster-token-file", token_file,
               "--heartbeat-timeout", str(HEARTBEAT_S), "--reconnect-seconds", "1", "--threads", "1", "--device",
               DEVICE] + list(args)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CheckFailed("worker still running after %d s:\n%s" % (timeout, self.text()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


class Cluster:
    """Rank 0 on a fixed rendezvous port, in a mode; workers started against it."""

    def __init__(self, parallel, port=None):
        self.port = port or free_port()
        self.server = Server("--world-size", "2", "--rendezvous", "127.0.0.1:%d" % self.port, "--cluster-token-file",
                             TOKEN_FILE, "--comm", COMM, "--parallel", parallel, "--heartbeat-timeout",
                             str(HEARTBEAT_S), "--threads", "1", "--lease-seconds", "10", "--device", DEVICE,
                             env=rank_env(0))
        self.server.start()
        self.workers = []

    def log(self):
        return self.server.stderr()

    def joins(self):
        return len(re.findall(r"rank 1 \(\S+\) joined", self.log()))

    def start_worker(self, *args, port=None, wait_join=True):
        before = self.joins()
        w = Worker(port or self.port, *args)
        self.workers.append(w)
        if wait_join:
            wait_until("the worker to join", lambda: self.joins() > before, timeout=60)
        return w

    def stop(self):
        for w in self.workers:
            w.kill()
        self.server.stop()
        self.server.cleanup()


def frames_of(server, vid):
    """The decoded RGB frames of a video's MP4."""
    if not shutil.which("ffmpeg"):
        skip("ffmpeg not installed")
    r = server.request("GET", "/v1/videos/%s/content" % vid)
    check_eq(r.status, 200, "content of " + vid)
    path = os.path.join(TMP, vid + ".mp4")
    with open(path, "wb") as f:
        f.write(r.body)
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True)
    check(out.returncode == 0 and out.stdout, "ffmpeg could not decode %s: %s" % (path, out.stderr))
    return out.stdout


def generate(server, fields, timeout=120):
    v = server.create(**fields)
    done = server.wait(v["id"], timeout=timeout)
    check_eq(done["status"], "completed", "job %s: %r" % (v["id"], done))
    return done["id"]


def ranks_total(server, mode, ranks):
    r = server.request("GET", "/metrics")
    m = re.search(r'^auteur_jobs_ranks_total\{mode="%s",ranks="%d"\} (\d+)$' % (mode, ranks), r.body.decode(),
                  re.M)
    return int(m.group(1)) if m else 0


def attempts(server, vid):
    db = sqlite3.connect(os.path.join(server.data_dir, "auteur.db"))
    try:
        return db.execute("SELECT attempts FROM videos WHERE id = ?", (vid,)).fetchone()[0]
    finally:
        db.close()


def health(server):
    return server.request("GET", "/health").json()


def wait_running_on_two(cluster, worker, vid):
    """Until the job is past its first step on both ranks."""
    wait_until("job %s started on rank 1" % vid, lambda: ("%s: my part" % vid) in worker.text() or
               ("%s: starting" % vid) in worker.text(), timeout=60)
    wait_until("job %s past step 1" % vid, lambda: cluster.server.get(vid)["progress"] >= 4, timeout=60)


_reference = {}


def reference_frames():
    """SMALL on a server of one rank."""
    if "frames" not in _reference:
        with Server("--threads", "1") as single:
            _reference["frames"] = frames_of(single, generate(single, SMALL))
    return _reference["frames"]


# ---- tests ----

def test_usage_errors():
    cases = [
        (["serve", "--world-size", "2", "--rendezvous", "127.0.0.1:1"], "needs a cluster token"),
        (["serve", "--world-size", "2", "--cluster-token-file", TOKEN_FILE], "needs --rendezvous"),
        (["serve", "--rank", "1"], "serve is rank 0"),
        (["serve", "--parallel", "ring"], "--parallel"),
        (["serve", "--world-size", "2", "--rendezvous", "h:1", "--cluster-token", "short"], "at least 16"),
        (["serve", "--world-size", "2", "--rendezvous", "h:1", "--cluster-token", TOKEN, "--cluster-token-file",
          TOKEN_FILE], "not both"),
        (["worker", "--world-size", "1"], "--world-size must be 2"),
        (["worker", "--cluster-token-file", TOKEN_FILE, "--rendezvous", "node0"], "HOST:PORT"),
        (["worker", "--cluster-token-file", os.path.join(TMP, "missing"), "--rendezvous", "h:1"], "missing"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTEUR_")}
    for args, needle in cases:
        r = subprocess.run([binary()] + args, capture_output=True, text=True, env=env)
        check_eq(r.returncode, 2, "%s: exit code (%s)" % (args, r.stderr))
        check(needle in r.stderr, "%s: %r not in %r" % (args, needle, r.stderr))
    r = subprocess.run([binary(), "worker", "--help"], capture_output=True, text=True, env=env)
    check(r.returncode == 0 and "AUTEUR_RECONNECT_SECONDS" in r.stdout and "AUTEUR_RENDEZVOUS" in r.stdout,
          r.stdout)


def test_refusals_wrong_token_model_version():
    c = Cluster("cfg")
    try:
        # wrong token: the worker exits 1; rank 0 logs the refusal and keeps serving
        bad = os.path.join(TMP, "bad-token")
        with open(bad, "w") as f:
            f.write("another-token-of-enough-length-0000\n")
        w = Worker(c.port, token_file=bad)
        check_eq(w.wait_exit(), 1, "worker with a wrong token: " + w.text())
        check("wrong cluster token" in w.text(), w.text())
        wait_until("rank 0's refusal", lambda: "wrong cluster token" in c.log())
        # another model: refused on both sides
        w = Worker(c.port, "--model", os.path.join(SOURCE, "models", "auteur-tiny"))
        check_eq(w.wait_exit(), 1, "worker with another model: " + w.text())
        check("model mismatch" in w.text(), w.text())
        wait_until("rank 0's model refusal", lambda: "model mismatch" in c.log())
        # another version, from a test double that speaks the protocol
        fingerprint = re.search(r"fingerprint is ([0-9a-f]+)", c.log())
        answer, sock = cluster_peer.connect_worker(("127.0.0.1", c.port), TOKEN, "0.0.0-other", "0" * 64)
        sock.close()
        check_eq(answer.get("type"), "refused", "the double's answer: %r" % answer)
        check_eq(answer.get("code"), "version", "the double's refusal: %r" % answer)
        check("0.0.0-other" in answer.get("reason", ""), answer)
        wait_until("rank 0's version refusal", lambda: "version mismatch" in c.log())
        check(fingerprint is not None, "model refusal names the fingerprints: " + c.log())
        # rank 0 kept serving alone all along
        check_eq(health(c.server)["ranks_joined"], 1, "ranks joined")
        generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "none", 1), 1, "the job ran alone")
    finally:
        c.stop()


def test_worker_refuses_rank0_of_another_version():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    result = {}
    t = threading.Thread(target=cluster_peer.serve_one_rank0, args=(listener, TOKEN, "9.9.9", result))
    t.start()
    w = Worker(listener.getsockname()[1])
    try:
        check_eq(w.wait_exit(), 1, "worker against a rank 0 of another version: " + w.text())
        check("version mismatch" in w.text() and "9.9.9" in w.text(), w.text())
        t.join(10)
        check_eq(result.get("answer", {}).get("code"), "version", "what the worker told rank 0: %r" % result)
    finally:
        w.kill()
        listener.close()


def test_two_ranks_equal_one_cfg_and_ulysses():
    ref = reference_frames()
    port = free_port()
    c = Cluster("cfg", port)
    w = c.start_worker()
    try:
        h = health(c.server)
        check_eq((h["world_size"], h["ranks_joined"], h["transport"]), (2, 2, "tcp"), "health with 2 ranks")
        check(any(r.get("rank") == 1 and r.get("joined") for r in h["ranks"]), "rank 1 in /health: %r" % h["ranks"])
        vid = generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "cfg", 2), 1, "cfg jobs on 2 ranks")
        check(frames_of(c.server, vid) == ref, "cfg on 2 ranks differs from one rank")
        check("%s: my part (cfg) done" % vid in w.text(), w.text())
        # rank 0 again in the ulysses mode, on the same port: the worker rejoins by itself
        c.server.stop()
        wait_until("the worker to notice", lambda: "rank 0 is shutting down" in w.text())
        c.server.args[c.server.args.index("--parallel") + 1] = "ulysses"
        c.server.start()
        wait_until("the worker to rejoin", lambda: c.joins() >= 1, timeout=60)
        vid = generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "ulysses", 2), 1, "ulysses jobs on 2 ranks")
        check(frames_of(c.server, vid) == ref, "ulysses on 2 ranks differs from one rank")
    finally:
        c.stop()


def test_kill9_worker_mid_job_then_rejoin():
    c = Cluster("cfg")
    w = c.start_worker()
    try:
        vid = c.server.create(**LONG)["id"]
        wait_running_on_two(c, w, vid)
        w.proc.kill()
        w.proc.wait()
        done = c.server.wait(vid, timeout=120)
        check_eq(done["status"], "completed", "job after the worker died: %r" % done)
        check_eq(attempts(c.server, vid), 1, "attempts")
        check("running it on rank 0 alone" in c.log(), c.log()[-2000:])
        check_eq(ranks_total(c.server, "none", 1), 1, "the job finished alone")
        h = health(c.server)
        check_eq(h["ranks_joined"], 1, "ranks joined after the loss")
        check(h["verdict"] != "READY", "READY with a rank missing")
        # a new worker rejoins without a restart of rank 0; the next job runs on both ranks
        c.start_worker()
        generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "cfg", 2), 1, "the next job on 2 ranks")
    finally:
        c.stop()


def test_link_cut_mid_job_then_rejoin():
    c = Cluster("cfg")
    relay = cluster_peer.Relay(("127.0.0.1", c.port))
    try:
        w = c.start_worker(port=relay.port)
        vid = c.server.create(**LONG)["id"]
        wait_running_on_two(c, w, vid)
        joins = c.joins()
        relay.cut()
        done = c.server.wait(vid, timeout=120)
        check_eq(done["status"], "completed", "job after the link was cut: %r" % done)
        check_eq(attempts(c.server, vid), 1, "attempts")
        check_eq(ranks_total(c.server, "none", 1), 1, "the job finished alone")
        # the worker reconnects through the relay and joins again between jobs
        wait_until("the worker to rejoin", lambda: c.joins() > joins, timeout=60)
        generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "cfg", 2), 1, "the next job on 2 ranks")
    finally:
        relay.close()
        c.stop()


def test_cancel_and_sigterm_mid_job():
    c = Cluster("cfg")
    w = c.start_worker()
    try:
        # DELETE a job running on both ranks: both stop, and the comm serves the next job
        vid = c.server.create(**LONG)["id"]
        wait_running_on_two(c, w, vid)
        check_eq(c.server.request("DELETE", "/v1/videos/" + vid).status, 200, "delete")
        wait_until("the worker to stop its part", lambda: re.search(vid + ": .*cancel", w.text()))
        generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "cfg", 2), 1, "the next job on 2 ranks")
        # SIGTERM mid-job: the worker finishes its part, then exits 0
        vid = c.server.create(**LONG)["id"]
        wait_running_on_two(c, w, vid)
        w.proc.send_signal(signal.SIGTERM)
        check_eq(w.wait_exit(), 0, "worker exit code on SIGTERM: " + w.text())
        check("%s: my part (cfg) done" % vid in w.text(), w.text())
        check_eq(c.server.wait(vid)["status"], "completed", "the job")
        check_eq(ranks_total(c.server, "cfg", 2), 2, "the job finished on 2 ranks")
        wait_until("rank 0 to see it leave", lambda: "the worker is shutting down" in c.log())
    finally:
        c.stop()


def test_sigstop_detected_within_heartbeat_timeout():
    c = Cluster("cfg")
    w = c.start_worker()
    try:
        joins = c.joins()
        t0 = time.time()
        w.proc.send_signal(signal.SIGSTOP)
        wait_until("rank 0 to find the worker lost", lambda: "lost: no heartbeat" in c.log(), timeout=HEARTBEAT_S + 5)
        elapsed = time.time() - t0
        check(elapsed <= HEARTBEAT_S + 2.5, "detected after %.1f s (timeout %d s)" % (elapsed, HEARTBEAT_S))
        check_eq(health(c.server)["ranks_joined"], 1, "ranks joined while the worker is stopped")
        w.proc.send_signal(signal.SIGCONT)
        wait_until("the worker to rejoin", lambda: c.joins() > joins, timeout=60)
        generate(c.server, SMALL)
        check_eq(ranks_total(c.server, "cfg", 2), 1, "the next job on 2 ranks")
    finally:
        c.stop()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
