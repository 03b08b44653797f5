"""deploy_files.py - readers for deploy/ and the Dockerfile, shared by test_deploy.py and
test_dockerfile.py: environment files (each setting, and whether a comment explains it),
systemd units, the options an auteur command accepts (read from its --help), the variables
deploy/launch.sh reads, and the NCCL variable names a libnccl knows.
"""

import glob
import mmap
import os
import re
import subprocess

SOURCE = os.environ.get("AUTEUR_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEPLOY = os.path.join(SOURCE, "deploy")
LAUNCH = os.path.join(DEPLOY, "launch.sh")

# KEY=value, or #KEY=value for a setting shown commented out.
SETTING = re.compile(r"^(#)?([A-Z][A-Z0-9_]*)=(.*)$")


class EnvSetting:
    def __init__(self, key, value, active, line_no, explained):
        self.key, self.value, self.active, self.line_no, self.explained = key, value, active, line_no, explained

    def __repr__(self):
        return "%s=%s (line %d%s)" % (self.key, self.value, self.line_no, "" if self.active else ", commented out")


def read_env(name):
    """The settings of deploy/<name>, active and commented out, in order. A setting is
    explained when the line just above it is a comment in words (not a bare #, not a setting)."""
    with open(os.path.join(DEPLOY, name)) as f:
        lines = f.read().splitlines()
    settings = []
    for i, line in enumerate(lines):
        m = SETTING.match(line)
        if not m:
            continue
        above = lines[i - 1] if i else ""
        explained = above.startswith("# ") and len(above) > 3 and not SETTING.match(above)
        settings.append(EnvSetting(m.group(2), m.group(3), m.group(1) is None, i + 1, explained))
    return settings


def env_values(name):
    """{KEY: value} of the active settings of deploy/<name>."""
    return {s.key: s.value for s in read_env(name) if s.active}


def read_unit(path):
    """A systemd unit as a list of (section, key, value), keys repeated as written."""
    entries, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, _, value = line.partition("=")
            entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(entries, key, section="Service"):
    return [v for s, k, v in entries if s == section and k == key]


class Options:
    """The flags and AUTEUR_* variables one auteur command accepts."""

    def __init__(self, command, flags, env):
        self.command, self.flags, self.env = command, flags, env


def command_options(binary, command):
    """Options of `auteur COMMAND` from its --help, or None when the command does not exist."""
    r = subprocess.run([binary, command, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or ("usage: auteur %s" % command) not in r.stdout:
        return None
    flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", r.stdout, re.M))
    env = set(re.findall(r"\[env (AUTEUR_[A-Z0-9_]+)\]", r.stdout))
    return Options(command, flags, env)


def launch_variables():
    """The LAUNCH_* variables deploy/launch.sh reads."""
    with open(LAUNCH) as f:
        return set(re.findall(r"\$\{?(LAUNCH_[A-Z0-9_]+)", f.read()))


def find_libnccl():
    """A libnccl.so of this machine, or None."""
    candidates = []
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
        candidates += re.findall(r"libnccl\.so\S* .*=> (\S+)", out)
    except OSError:
        pass
    candidates += glob.glob("/usr/local/cuda*/lib*/libnccl.so*") + glob.glob("/usr/lib/*-linux-gnu/libnccl.so*")
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def nccl_variable_names(libnccl):
    """Every NCCL_* string in the library: the variables it reads, among other words."""
    with open(libnccl, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return {m.decode() for m in re.findall(rb"NCCL_[A-Z0-9_]+", data)}
