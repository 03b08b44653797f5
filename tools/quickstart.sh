#!/usr/bin/env bash
# quickstart.sh - installs what is missing, builds Auteur, makes a first video on the
# embedded default model with the CLI, then starts the service on 127.0.0.1:8080
# (Ctrl-C stops it). Extra arguments go to `auteur serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

echo
echo "== a first video with the CLI (default model) =="
build/auteur generate --prompt "a red circle moving to the right on a blue background" -o first.mp4
echo "wrote first.mp4"
cat <<'MSG'

== the service is starting on http://127.0.0.1:8080 ==
In another terminal:
  curl -s http://127.0.0.1:8080/v1/videos -H 'Content-Type: application/json' \
       -d '{"prompt":"a yellow square moving up"}'
  curl -s http://127.0.0.1:8080/v1/videos/VIDEO_ID          # until "status":"completed"
  curl -s -o video.mp4 http://127.0.0.1:8080/v1/videos/VIDEO_ID/content
MSG
exec build/auteur serve --host 127.0.0.1 --port 8080 "$@"
