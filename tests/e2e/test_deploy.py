"""test_deploy.py - deploy/ says only what the binary accepts, and launch.sh guards a node.

The systemd units, the environment files and compose.yaml may name only flags and AUTEUR_*
variables that `auteur serve --help` (rank 0) and `auteur worker --help` (rank 1) list, LAUNCH_*
variables that deploy/launch.sh reads and, in nccl.env, NCCL_* variables that libnccl knows;
every setting has a comment; the two nodes agree (world size, rendezvous, model). The units pass
`systemd-analyze verify`. launch.sh is run for real: each missing prerequisite gives a clear
message and exit 1, a usage error exit 2, and with everything in place it starts auteur serve.
Rank 1's settings are checked against `auteur worker --help`, the cluster variables of rank 0
against `auteur serve --help`: a name either does not list fails.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_files import (DEPLOY, LAUNCH, SOURCE, command_options, env_values, find_libnccl,  # noqa: E402
                          launch_variables, nccl_variable_names, read_env, read_unit, unit_values)
from harness import binary, check, check_eq, run_tests  # noqa: E402

BIN = binary()
WORK = tempfile.mkdtemp(prefix="auteur-deploy-")
SERVE = command_options(BIN, "serve")
WORKER = command_options(BIN, "worker")
MIGRATE = command_options(BIN, "migrate")
LAUNCH_VARS = launch_variables()
ENV_FILES = ("nccl.env", "node0.env", "node1.env")
ROLE_ENV = {"node0.env": SERVE, "node1.env": WORKER}
ROLE_UNIT = {"auteur.service": ("serve", "node0.env"), "auteur-worker.service": ("worker", "node1.env")}
# serve's options for the two-node engine, added with the worker subcommand.
CLUSTER_ENV = {"AUTEUR_WORLD_SIZE", "AUTEUR_RANK", "AUTEUR_RENDEZVOUS", "AUTEUR_CLUSTER_TOKEN",
               "AUTEUR_CLUSTER_TOKEN_FILE", "AUTEUR_PARALLEL", "AUTEUR_COMM", "AUTEUR_HEARTBEAT_TIMEOUT"}


def skipped_part(what):
    check(False, "%s: `auteur worker --help` does not work" % what)


def check_variable(name, options, where):
    """name is one the role's binary accepts, one launch.sh reads, or (nccl.env only) NCCL's."""
    if name.startswith("AUTEUR_"):
        check(options is not SERVE or name not in CLUSTER_ENV or name in SERVE.env,
              "%s: %s, `auteur serve --help` lists no cluster option" % (where, name))
        check(name in options.env, "%s names %s, which `auteur %s` does not accept (it takes %s)" % (
            where, name, options.command, ", ".join(sorted(options.env))))
    elif name.startswith("LAUNCH_"):
        check(name in LAUNCH_VARS, "%s names %s, which deploy/launch.sh does not read" % (where, name))
    else:
        check(False, "%s names %s: only AUTEUR_* and LAUNCH_* belong there (NCCL_* in nccl.env)" % (where, name))


# ---- environment files ----

def test_every_setting_is_explained():
    for name in ENV_FILES:
        settings = read_env(name)
        check(settings, "%s has settings" % name)
        for s in settings:
            check(s.explained, "deploy/%s line %d: %s has no comment just above it" % (name, s.line_no, s.key))
        active = [s.key for s in settings if s.active]
        check_eq(sorted(set(active)), sorted(active), "deploy/%s sets each variable once" % name)


def test_node_env_files_name_real_options():
    check(SERVE is not None, "`auteur serve --help` works")
    for s in read_env("node0.env"):
        check_variable(s.key, SERVE, "deploy/node0.env line %d" % s.line_no)
    if WORKER is None:
        skipped_part("node1.env against `auteur worker` options")
        return
    for s in read_env("node1.env"):
        check_variable(s.key, WORKER, "deploy/node1.env line %d" % s.line_no)


def test_the_two_nodes_agree():
    n0, n1 = env_values("node0.env"), env_values("node1.env")
    check_eq((n0.get("AUTEUR_RANK"), n1.get("AUTEUR_RANK")), ("0", "1"), "ranks of node0.env, node1.env")
    for key in ("AUTEUR_WORLD_SIZE", "AUTEUR_RENDEZVOUS", "AUTEUR_MODEL", "AUTEUR_DEVICE", "AUTEUR_HEARTBEAT_TIMEOUT"):
        check(key in n0, "node0.env sets %s" % key)
        check_eq(n1.get(key), n0[key], "%s on node 1 and node 0" % key)
    check_eq(n0["AUTEUR_WORLD_SIZE"], "2", "the pair is two ranks")
    for name in ("node0.env", "node1.env"):
        check(not any(s.key in ("AUTEUR_CLUSTER_TOKEN", "AUTEUR_CLUSTER_TOKEN_FILE") and s.active
                      for s in read_env(name)),
              "%s leaves the token to the unit's credential and compose's secret" % name)


def test_nccl_env_names_nccl_variables():
    settings = env_values("nccl.env")
    for key in ("NCCL_SOCKET_IFNAME", "NCCL_IB_HCA", "NCCL_IB_GID_INDEX", "NCCL_NET_GDR_LEVEL",
                "NCCL_DMABUF_ENABLE", "NCCL_DEBUG"):
        check(key in settings, "nccl.env sets %s" % key)
    check_eq(settings["NCCL_DEBUG"], "WARN", "NCCL_DEBUG")
    names = [s.key for s in read_env("nccl.env")]
    for key in names:
        check(key.startswith("NCCL_"), "nccl.env holds only NCCL_* variables, not %s" % key)
    for name in ("node0.env", "node1.env"):
        check(not any(s.key.startswith("NCCL_") for s in read_env(name)), "NCCL settings only in nccl.env: " + name)
    lib = find_libnccl()
    if lib is None:
        print("skipped part: no libnccl on this machine to check the NCCL names against")
        return
    known = nccl_variable_names(lib)
    for key in names:
        check(key in known, "nccl.env: %s is not a variable %s reads" % (key, lib))


def test_launch_reads_only_real_variables():
    with open(LAUNCH) as f:
        text = f.read()
    used = set(re.findall(r"\$\{?(AUTEUR_[A-Z0-9_]+)", text))
    check("AUTEUR_RANK" in used and "AUTEUR_CLUSTER_TOKEN_FILE" in used, "launch.sh reads: %r" % used)
    for name in sorted(used):
        if WORKER is None or name not in WORKER.env:
            check_variable(name, SERVE, "deploy/launch.sh")


# ---- systemd units ----

def test_units_name_real_files_flags_and_variables():
    for unit, (role, env_file) in ROLE_UNIT.items():
        entries = read_unit(os.path.join(DEPLOY, unit))
        where = "deploy/" + unit
        files = [os.path.basename(p) for p in unit_values(entries, "EnvironmentFile")]
        check_eq(files, ["nccl.env", env_file], where + " EnvironmentFile")
        check_eq(unit_values(entries, "ExecStart"), ["/usr/local/lib/auteur/launch.sh " + role], where + " ExecStart")
        for key, want in (("User", "auteur"), ("StateDirectory", "auteur"), ("ProtectSystem", "strict"),
                          ("NoNewPrivileges", "yes"), ("LimitMEMLOCK", "infinity"), ("PrivateTmp", "yes")):
            check_eq(unit_values(entries, key), [want], "%s %s" % (where, key))
        check(unit_values(entries, "Restart") in (["on-failure"], ["always"]), where + " restarts")
        check_eq(unit_values(entries, "LoadCredential"), ["cluster-token:/etc/auteur/cluster-token"],
                 where + " token credential")
        options = SERVE if role == "serve" else WORKER
        if options is None:
            skipped_part(where + " against `auteur worker` options")
            continue
        for value in unit_values(entries, "Environment"):
            check_variable(value.split("=", 1)[0], options, where + " Environment=")
        check("AUTEUR_CLUSTER_TOKEN_FILE=%d/cluster-token" in unit_values(entries, "Environment"),
              where + " points the token file at the credential")
    pre = unit_values(read_unit(os.path.join(DEPLOY, "auteur.service")), "ExecStartPre")
    check_eq(pre, ["/usr/local/bin/auteur migrate"], "auteur.service migrates first")
    check(MIGRATE is not None, "`auteur migrate --help` works")


def test_units_pass_systemd_analyze_verify():
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("skipped part: systemd-analyze not installed")
        return
    # The units name their installed paths; point them at this tree's files for the check.
    folder = os.path.join(WORK, "units")
    os.makedirs(folder)
    paths = []
    for unit in ROLE_UNIT:
        with open(os.path.join(DEPLOY, unit)) as f:
            text = f.read()
        text = text.replace("/usr/local/bin/auteur", BIN).replace("/usr/local/lib/auteur/launch.sh", LAUNCH)
        paths.append(os.path.join(folder, unit))
        with open(paths[-1], "w") as f:
            f.write(text)
    r = subprocess.run([tool, "verify"] + paths, capture_output=True, text=True, timeout=120)
    check_eq(r.returncode, 0, "systemd-analyze verify: " + r.stderr)
    check_eq(r.stdout + r.stderr, "", "systemd-analyze verify says nothing")


# ---- compose ----

def test_compose_file():
    try:
        import yaml
    except ImportError:
        check(False, "PyYAML is needed to read compose.yaml (tools/deps.sh installs it)")
    with open(os.path.join(DEPLOY, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    check_eq(sorted(services), ["node0", "node1"], "compose services")
    check_eq(compose["secrets"]["cluster_token"]["file"], "${AUTEUR_TOKEN_FILE:-/etc/auteur/cluster-token}",
             "the token secret")
    node0 = env_values("node0.env")
    for name, role, env_file in (("node0", "serve", "node0.env"), ("node1", "worker", "node1.env")):
        s = services[name]
        where = "compose.yaml " + name
        check_eq(s["profiles"], [name], where + " profile")
        check_eq(s["command"], [role], where + " command")
        check_eq(s["network_mode"], "host", where + " network")
        check_eq(s["runtime"], "nvidia", where + " runtime")
        check("/dev/infiniband:/dev/infiniband" in s["devices"], where + " RDMA devices")
        check_eq(s["ulimits"]["memlock"], {"soft": -1, "hard": -1}, where + " memlock")
        check("IPC_LOCK" in s["cap_add"], where + " IPC_LOCK")
        check_eq(s["secrets"], ["cluster_token"], where + " secret")
        check_eq(s["env_file"], ["nccl.env", env_file], where + " env files")
        check_eq(s["environment"]["AUTEUR_CLUSTER_TOKEN_FILE"], "/run/secrets/cluster_token", where + " token")
        options = SERVE if role == "serve" else WORKER
        if options is None:
            skipped_part(where + " environment against `auteur worker` options")
            continue
        for key in s["environment"]:
            if not key.startswith("NVIDIA_"):  # read by the NVIDIA runtime
                check_variable(key, options, where + " environment")
    check("auteur-data:/var/lib/auteur" in services["node0"]["volumes"], "node0 keeps its data in a volume")
    check_eq(services["node0"]["environment"]["AUTEUR_DATA_DIR"], node0["AUTEUR_DATA_DIR"], "data dir")
    check_eq(services["node1"]["healthcheck"], {"disable": True}, "the worker has no HTTP health check")


# ---- launch.sh, run for real ----

def launch(*args, env=None, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AUTEUR_", "NCCL_", "LAUNCH_"))}
    e.update({"LAUNCH_AUTEUR": BIN, "LAUNCH_PEER_WAIT_SECONDS": "0"})
    e.update(env or {})
    return subprocess.run([LAUNCH] + list(args), capture_output=True, text=True, timeout=timeout, env=e, cwd=WORK)


def token_file(mode, text="ab" * 32):
    path = os.path.join(WORK, "token-%o-%d" % (mode, len(text)))
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


def fake_nvidia_smi(output, code=0):
    """A PATH folder whose nvidia-smi prints output and exits with code (a test double)."""
    folder = tempfile.mkdtemp(prefix="bin-", dir=WORK)
    path = os.path.join(folder, "nvidia-smi")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho '%s'\nexit %d\n" % (output, code))
    os.chmod(path, 0o755)
    return folder + os.pathsep + os.environ["PATH"]


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


MODEL = os.path.join(SOURCE, "models", "tiny-random")


def worker_env(**extra):
    env = {"AUTEUR_DEVICE": "cpu", "AUTEUR_WORLD_SIZE": "2", "AUTEUR_RANK": "1", "AUTEUR_MODEL": MODEL,
           "AUTEUR_CLUSTER_TOKEN_FILE": token_file(0o600), "NCCL_IB_DISABLE": "1"}
    env.update(extra)
    return env


def test_launch_worker_ready_when_everything_is_there():
    with listener() as rank0:
        rv = "127.0.0.1:%d" % rank0.getsockname()[1]
        r = launch("--check", "worker", env=worker_env(AUTEUR_RENDEZVOUS=rv))
    check_eq(r.returncode, 0, "launch.sh --check worker: " + r.stderr)
    for needle in ("ok    role worker, rank 1 of 2", "ok    cluster token", "ok    rendezvous: rank 0 answers at " + rv,
                   "ok    model: " + MODEL, "NCCL_IB_DISABLE=1", "all prerequisites met for worker"):
        check(needle in r.stderr, "%r in:\n%s" % (needle, r.stderr))


def test_launch_names_each_missing_prerequisite():
    with listener() as rank0:
        port = rank0.getsockname()[1]
    # the port is closed now: nobody answers there
    cases = [
        ({"AUTEUR_CLUSTER_TOKEN_FILE": token_file(0o644)}, "group and others must have no access (chmod 600"),
        ({"AUTEUR_CLUSTER_TOKEN_FILE": token_file(0o600, "short")}, "holds 5 characters, expected at least 32"),
        ({"AUTEUR_CLUSTER_TOKEN_FILE": os.path.join(WORK, "absent")}, "does not exist"),
        ({"AUTEUR_CLUSTER_TOKEN_FILE": ""}, "set AUTEUR_CLUSTER_TOKEN_FILE"),
        ({"AUTEUR_MODEL": WORK}, "has no readable auteur-model.json"),
        ({"AUTEUR_MODEL": os.path.join(WORK, "nowhere")}, "is not a folder"),
        ({"AUTEUR_RENDEZVOUS": "127.0.0.1:%d" % port}, "rank 0 does not answer at 127.0.0.1:%d" % port),
        ({"AUTEUR_RENDEZVOUS": "no-port"}, "is not HOST:PORT"),
        ({"AUTEUR_RENDEZVOUS": ""}, "set AUTEUR_RENDEZVOUS"),
        ({"AUTEUR_DEVICE": "cuda", "PATH": fake_nvidia_smi("NVIDIA-SMI has failed: no driver", 9)},
         "GPU: nvidia-smi found no usable GPU"),
    ]
    ib = "/sys/class/infiniband"
    if not (os.path.isdir(ib) and os.listdir(ib)):  # a machine without RDMA devices
        cases.append(({"NCCL_IB_DISABLE": ""}, "RDMA: no device in /sys/class/infiniband"))
    for extra, needle in cases:
        env = worker_env(AUTEUR_RENDEZVOUS="127.0.0.1:%d" % port)
        env.update(extra)
        r = launch("--check", "worker", env=env)
        check_eq(r.returncode, 1, "exit code with %r: %s" % (extra, r.stderr))
        check(needle in r.stderr, "%r for %r in:\n%s" % (needle, extra, r.stderr))
        check("prerequisite(s) missing: worker not started" in r.stderr, r.stderr)


def test_launch_sees_the_gpu():
    env = {"AUTEUR_DEVICE": "cuda", "AUTEUR_DATA_DIR": WORK, "PATH": fake_nvidia_smi("NVIDIA GB10, 580.95.05")}
    r = launch("--check", "serve", env=env)
    check_eq(r.returncode, 0, r.stderr)
    check("ok    GPU: NVIDIA GB10, driver 580.95.05 (1 visible)" in r.stderr, r.stderr)


def test_launch_rank0_listens_on_its_own_address():
    env = {"AUTEUR_DEVICE": "cpu", "AUTEUR_WORLD_SIZE": "2", "AUTEUR_RANK": "0", "AUTEUR_DATA_DIR": WORK,
           "AUTEUR_CLUSTER_TOKEN_FILE": token_file(0o400), "NCCL_IB_DISABLE": "1",
           "AUTEUR_RENDEZVOUS": "203.0.113.77:29500"}  # TEST-NET-3: no machine has it
    r = launch("--check", "serve", env=env)
    check_eq(r.returncode, 1, r.stderr)
    check("203.0.113.77" in r.stderr and "is not an address of this node" in r.stderr, r.stderr)
    env["AUTEUR_RENDEZVOUS"] = "127.0.0.1:29500"
    r = launch("--check", "serve", env=env)
    check_eq(r.returncode, 0, r.stderr)


def test_launch_usage_errors_exit_2():
    for args, env, needle in (
            (["serve"], {"AUTEUR_RANK": "1", "AUTEUR_WORLD_SIZE": "2"}, "serve is rank 0"),
            (["worker"], {"AUTEUR_RANK": "0", "AUTEUR_WORLD_SIZE": "2"}, "a worker is rank 1 or more"),
            (["worker"], {"AUTEUR_WORLD_SIZE": "1"}, "needs AUTEUR_WORLD_SIZE of 2 or more"),
            (["serve"], {"AUTEUR_WORLD_SIZE": "two"}, "AUTEUR_WORLD_SIZE must be a positive integer"),
            (["--check", "migrate"], {}, "--check takes serve or worker")):
        r = launch(*args, env=env)
        check_eq(r.returncode, 2, "exit code for %r %r: %s" % (args, env, r.stderr))
        check(needle in r.stderr, "%r in %s" % (needle, r.stderr))
    r = launch(env={"LAUNCH_AUTEUR": os.path.join(WORK, "no-auteur")})
    check_eq(r.returncode, 1, r.stderr)
    check("the auteur binary was not found" in r.stderr, r.stderr)


def test_launch_passes_other_commands_through():
    r = launch("migrate", "--data-dir", os.path.join(WORK, "migrated"))
    check_eq(r.returncode, 0, r.stderr)
    check(os.path.exists(os.path.join(WORK, "migrated", "auteur.db")), "migrate ran: " + r.stderr)


def test_launch_starts_serve_and_signals_reach_it():
    data = os.path.join(WORK, "served")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AUTEUR_", "NCCL_", "LAUNCH_"))}
    e.update({"LAUNCH_AUTEUR": BIN, "AUTEUR_DEVICE": "cpu", "AUTEUR_DATA_DIR": data, "AUTEUR_MODEL": MODEL})
    out_path = os.path.join(WORK, "serve.out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([LAUNCH, "serve", "--port", "0"], stdout=out, stderr=subprocess.PIPE, env=e)
    try:
        port, deadline = None, time.time() + 120
        while port is None and time.time() < deadline and proc.poll() is None:
            with open(out_path) as f:
                for line in f:
                    if "listening on http://" in line:
                        port = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        check(port is not None, "auteur serve started through launch.sh (exit %s)" % proc.poll())
        with urllib.request.urlopen("http://127.0.0.1:%d/health/live" % port, timeout=10) as r:
            check_eq(r.status, 200, "/health/live")
        proc.send_signal(signal.SIGTERM)  # launch.sh exec'd auteur: the signal reaches it
        check_eq(proc.wait(timeout=60), 0, "auteur serve exit code after SIGTERM")
        err = proc.stderr.read().decode()
        check("launch.sh: starting auteur serve" in err, err)
        check(stat.S_ISDIR(os.stat(data).st_mode), "data dir made")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
