#!/bin/sh
# bench_http.sh - requests per second of GET /v1/videos/{id} on loopback.
#
# Starts `auteur serve` on a free port with a temporary data directory, makes one video on
# the default (tiny) model, then loads GET /v1/videos/{id} (a store read and a JSON render)
# and, as the reference measured in the same run, GET /v1/unknown (a 404 answered by the
# router alone, the floor of the HTTP stack). Uses wrk when installed, else ab, else a
# Python keep-alive client. Prints one table row per route and the ratio.
#
# usage: bench/bench_http.sh [path/to/auteur] [seconds] [connections]
# env:   AUTEUR_HTTP_THREADS (server threads, default 4)
set -eu

BIN=${1:-build/auteur}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${3:-32}
[ -x "$BIN" ] || { echo "bench_http: no auteur binary at $BIN (build it, or pass its path)" >&2; exit 1; }

DATA=$(mktemp -d /tmp/auteur-bench-XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

"$BIN" serve --port 0 --data-dir "$DATA" --http-threads "${AUTEUR_HTTP_THREADS:-4}" \
    >"$DATA/stdout.log" 2>"$DATA/stderr.log" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/.*:\([0-9][0-9]*\)$/\1/p' "$DATA/stdout.log")
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { echo "bench_http: the server did not start:" >&2; cat "$DATA/stderr.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"

ID=$(python3 - "$BASE" <<'EOF'
import json, sys, time, urllib.request
base = sys.argv[1]
req = urllib.request.Request(base + "/v1/videos", method="POST", headers={"Content-Type": "application/json"},
                             data=json.dumps({"prompt": "benchmark", "size": "32x32", "frames": 1, "steps": 1}).encode())
vid = json.load(urllib.request.urlopen(req))["id"]
while json.load(urllib.request.urlopen(base + "/v1/videos/" + vid))["status"] not in ("completed", "failed"):
    time.sleep(0.05)
print(vid)
EOF
)

# measure URL -> "requests_per_second p50_ms p99_ms"
measure() {
    if command -v wrk >/dev/null 2>&1; then
        TOOL=wrk
        wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$1" | awk '
            /Requests\/sec/ {rps = $2}
            $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
            function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
            END {printf "%.0f %.3f %.3f\n", rps, ms(p50), ms(p99)}'
    elif command -v ab >/dev/null 2>&1; then
        TOOL=ab
        ab -k -q -c "$CONNECTIONS" -t "$SECONDS_PER_RUN" -n 10000000 "$1" 2>/dev/null | awk '
            /Requests per second/ {rps = $4}
            $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
            END {printf "%.0f %.3f %.3f\n", rps, p50, p99}'
    else
        TOOL=python
        python3 - "$1" "$SECONDS_PER_RUN" "$CONNECTIONS" <<'EOF'
import http.client, sys, threading, time, urllib.parse
url, secs, conns = urllib.parse.urlsplit(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
lat, lock, stop = [], threading.Lock(), time.time() + secs
def worker():
    c = http.client.HTTPConnection(url.hostname, url.port)
    mine = []
    while time.time() < stop:
        t = time.perf_counter()
        c.request("GET", url.path)
        c.getresponse().read()
        mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)
ts = [threading.Thread(target=worker) for _ in range(conns)]
[t.start() for t in ts]
[t.join() for t in ts]
lat.sort()
print("%.0f %.3f %.3f" % (len(lat) / secs, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3))
EOF
    fi
}

TOOL=
VIDEO=$(measure "$BASE/v1/videos/$ID")
FLOOR=$(measure "$BASE/v1/unknown")
echo "GET /v1/videos/{id} on loopback: $(nproc) CPU(s), $CONNECTIONS connections, ${SECONDS_PER_RUN} s per route," \
     "server threads ${AUTEUR_HTTP_THREADS:-4}, load tool $(command -v wrk >/dev/null && echo wrk || (command -v ab >/dev/null && echo ab || echo python))"
printf '%-26s %12s %10s %10s\n' route requests/s p50_ms p99_ms
echo "$VIDEO" | awk '{printf "%-26s %12s %10s %10s\n", "GET /v1/videos/{id}", $1, $2, $3}'
echo "$FLOOR" | awk '{printf "%-26s %12s %10s %10s\n", "GET /v1/unknown (404)", $1, $2, $3}'
echo "$VIDEO $FLOOR" | awk '{ if ($4 > 0) printf "ratio video/404: %.2f\n", $1 / $4 }'
