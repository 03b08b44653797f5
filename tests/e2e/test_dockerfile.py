"""test_dockerfile.py - the Dockerfile has what the image needs, checked without Docker.

No image can be built here (no daemon, no registry), so this reads the Dockerfile: two stages
from pinned NVIDIA CUDA 13 devel and runtime images of one version, both platforms handled
through TARGETARCH, the CUDA backend required, a non-root numeric USER that exists in the image,
the data dir as a VOLUME, a HEALTHCHECK on /health/live with a tool the image installs, the HTTP
and rendezvous ports of deploy/node0.env exposed, launch.sh as the entry point; every COPY source
exists and survives .dockerignore; and CMake configures from exactly what the build stage copies.
"""

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_files import SOURCE, env_values  # noqa: E402
from harness import check, check_eq, run_tests  # noqa: E402

WORK = tempfile.mkdtemp(prefix="auteur-dockerfile-")


def read_instructions():
    """[(stage index, INSTRUCTION, arguments)]; stage -1 before the first FROM."""
    with open(os.path.join(SOURCE, "Dockerfile")) as f:
        text = f.read()
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            logical.append(current.strip())
        current = ""
    out, stage = [], -1
    for line in logical:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    return out


INSTR = read_instructions()
GLOBAL_ARGS = dict(a.split("=", 1) for s, w, a in INSTR if s == -1 and w == "ARG" and "=" in a)


def stage(n):
    return [(w, a) for s, w, a in INSTR if s == n]


def resolve(text):
    return re.sub(r"\$\{(\w+)\}", lambda m: GLOBAL_ARGS.get(m.group(1), m.group(0)), text)


def apt_packages(instructions):
    pkgs = set()
    for w, a in instructions:
        if w == "RUN" and "apt-get install" in a:
            tail = a.split("apt-get install", 1)[1].split("&&", 1)[0]
            pkgs |= {t for t in tail.split() if not t.startswith("-")}
    return pkgs


def test_two_stages_from_pinned_cuda13_images():
    froms = [a for s, w, a in INSTR if w == "FROM"]
    check_eq(len(froms), 2, "stages")
    check(re.fullmatch(r"13\.0\.\d+", GLOBAL_ARGS.get("CUDA_VERSION", "")), "CUDA_VERSION pinned to 13.0.x: %r"
          % GLOBAL_ARGS)
    check_eq(GLOBAL_ARGS.get("UBUNTU"), "ubuntu24.04", "UBUNTU")
    build, run = resolve(froms[0]), resolve(froms[1])
    version = GLOBAL_ARGS["CUDA_VERSION"]
    check_eq(build, "nvidia/cuda:%s-devel-ubuntu24.04 AS build" % version, "build stage base")
    check_eq(run.split()[0], "nvidia/cuda:%s-runtime-ubuntu24.04" % version, "run stage base")
    check("latest" not in build + run, "no latest tag")


def test_both_platforms():
    build = stage(0)
    check(("ARG", "TARGETARCH") in build, "the build stage takes TARGETARCH")
    guard = [a for w, a in build if w == "RUN" and "TARGETARCH" in a]
    check(guard and "amd64" in guard[0] and "arm64" in guard[0], "amd64 and arm64 handled: %r" % guard)


def test_build_requires_cuda_and_nccl():
    runs = " ".join(a for w, a in stage(0) if w == "RUN")
    check("-DAUTEUR_CUDA=ON" in runs, "the CUDA backend is required")
    check("--target auteur" in runs, "builds the auteur binary")
    check("libnccl" in runs, "the build checks that NCCL is linked")
    copies = [a for w, a in stage(1) if w == "COPY" and a.startswith("--from=build")]
    check_eq(copies, ["--from=build /src/build/auteur /usr/local/bin/auteur"], "the run stage takes the binary")


def test_runs_as_a_non_root_user_that_exists():
    final = stage(1)
    users = [a for w, a in final if w == "USER"]
    check(users, "a USER in the run stage")
    uid, _, gid = users[-1].partition(":")
    check(uid.isdigit() and int(uid) != 0, "numeric non-root uid: %r" % users[-1])
    runs = " ".join(a for w, a in final if w == "RUN")
    check("useradd" in runs and "--uid %s" % uid in runs, "the user %s is created in the image" % uid)
    if gid:
        check("--gid %s" % gid in runs, "the group %s is created in the image" % gid)


def env_of(instructions):
    env = {}
    for w, a in instructions:
        if w == "ENV":
            for token in shlex.split(a):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def test_data_dir_is_a_volume():
    final = stage(1)
    data_dir = env_of(final).get("AUTEUR_DATA_DIR")
    check_eq(data_dir, env_values("node0.env")["AUTEUR_DATA_DIR"], "the image's data dir and node0.env's")
    volumes = [a for w, a in final if w == "VOLUME"]
    check(any(data_dir in v for v in volumes), "VOLUME %s: %r" % (data_dir, volumes))


def test_healthcheck_on_health_live_with_an_installed_tool():
    final = stage(1)
    checks = [a for w, a in final if w == "HEALTHCHECK"]
    check_eq(len(checks), 1, "one HEALTHCHECK")
    check("/health/live" in checks[0], "checks /health/live: " + checks[0])
    check("curl" in checks[0] and "curl" in apt_packages(final), "curl is installed in the run stage")
    check("${AUTEUR_PORT}" in checks[0], "on the configured port")


def test_ports_exposed():
    final = stage(1)
    exposed = {p for w, a in final if w == "EXPOSE" for p in a.split()}
    port = env_of(final).get("AUTEUR_PORT")
    rendezvous_port = env_values("node0.env")["AUTEUR_RENDEZVOUS"].rsplit(":", 1)[1]
    check(port in exposed and rendezvous_port in exposed, "EXPOSE %s and %s: %r" % (port, rendezvous_port, exposed))


def test_entrypoint_is_launch_sh():
    final = stage(1)
    entry = [a for w, a in final if w == "ENTRYPOINT"]
    check_eq(entry, ['["/usr/local/lib/auteur/launch.sh"]'], "ENTRYPOINT")
    check(any(w == "COPY" and a.endswith("deploy/launch.sh /usr/local/lib/auteur/launch.sh") for w, a in final),
          "launch.sh is copied there")
    check_eq([a for w, a in final if w == "CMD"], ['["serve"]'], "CMD")


def dockerignore_patterns():
    with open(os.path.join(SOURCE, ".dockerignore")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def ignored(path, patterns):
    """Whether .dockerignore leaves path (or a folder above it) out of the build context."""
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for p in patterns:
            if fnmatch.fnmatch(prefix, p) or (p.startswith("**/") and fnmatch.fnmatch(parts[i - 1], p[3:])):
                return True
    return False


def copy_sources():
    """The context paths the Dockerfile copies (not from another stage)."""
    sources = []
    for s, w, a in INSTR:
        if w == "COPY" and "--from=" not in a:
            args = [t for t in a.split() if not t.startswith("--")]
            sources += args[:-1]
    return sources


def test_copy_sources_exist_and_are_not_ignored():
    patterns = dockerignore_patterns()
    for src in copy_sources():
        check(os.path.exists(os.path.join(SOURCE, src)), "COPY %s: no such path" % src)
        check(not ignored(src, patterns), "COPY %s: left out by .dockerignore" % src)
    for needed_out in ("build", "build-x", ".git", "auteur-data"):
        check(ignored(needed_out, patterns), ".dockerignore leaves out %s" % needed_out)


def test_cmake_configures_from_what_the_build_stage_copies():
    """The build stage's COPY list holds everything CMake needs (CUDA off: no nvcc needed)."""
    patterns = dockerignore_patterns()
    context = os.path.join(WORK, "src")
    os.makedirs(context)
    for src in (a for w, a in stage(0) if w == "COPY"):
        names = src.split()
        for name in names[:-1]:
            source = os.path.join(SOURCE, name)
            target = os.path.join(context, name)
            if os.path.isdir(source):
                shutil.copytree(source, target, ignore=lambda d, files: [
                    f for f in files if ignored(os.path.relpath(os.path.join(d, f), SOURCE), patterns)])
            else:
                shutil.copy(source, target)
    cmake = [a for w, a in stage(0) if w == "RUN" and a.startswith("cmake ")][0].split("&&")[0].split()
    flags = [f.replace("-DAUTEUR_CUDA=ON", "-DAUTEUR_CUDA=OFF") for f in cmake if f.startswith("-D")]
    r = subprocess.run(["cmake", "-S", context, "-B", os.path.join(WORK, "build")] + flags,
                       capture_output=True, text=True, timeout=300)
    check_eq(r.returncode, 0, "cmake configure of the build stage's sources:\n" + r.stdout[-2000:] + r.stderr[-3000:])


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
