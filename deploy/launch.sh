#!/usr/bin/env bash
# launch.sh - checks that a node can run its Auteur role, then starts it (systemd units and
# the container image both start Auteur through this script; see deploy/RUNBOOK.md).
#
#   launch.sh [serve|worker] [AUTEUR FLAGS...]   check, then exec `auteur serve|worker`
#   launch.sh --check [serve|worker]             check only; exit 0 when the node is ready
#   launch.sh COMMAND [ARGS...]                  any other auteur command, run as is (migrate, health...)
#
# The role is the first argument, else AUTEUR_RANK (0: serve, 1 and up: worker), else serve.
# Settings come from the environment, as for auteur itself (AUTEUR_*, NCCL_*). Checks, in order:
# the binary; the role against AUTEUR_RANK/AUTEUR_WORLD_SIZE; the NVIDIA driver and a GPU (unless
# AUTEUR_DEVICE=cpu); with two ranks or more: the RDMA devices NCCL will use, the memlock limit,
# the cluster token file (present, not empty, readable by no one else), the rendezvous address
# (rank 0: one of this node's; rank 1: rank 0 answers there, waiting up to
# LAUNCH_PEER_WAIT_SECONDS); the model folder; the data folder (rank 0). Every failed check is
# printed; the exit code is 1 when a prerequisite is missing, 2 for a usage error. The checks read
# the environment only: flags after the role go to auteur as they are, unchecked.
#
# Variables of this script only: LAUNCH_AUTEUR (the auteur binary; default: auteur on PATH),
# LAUNCH_PEER_WAIT_SECONDS (default 60).
set -euo pipefail

PROG=launch.sh
failures=0

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
ok() { say "ok    $*"; }
note() { say "note  $*"; }
fail() {
    say "FAIL  $*"
    failures=$((failures + 1))
}
usage_error() {
    say "$*"
    say "usage: $PROG [--check] [serve|worker] [auteur flags...] | COMMAND [ARGS...]"
    exit 2
}
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---- the binary ----

find_auteur() {
    AUTEUR="${LAUNCH_AUTEUR:-}"
    if [[ -z "$AUTEUR" ]]; then
        AUTEUR="$(command -v auteur || true)"
    fi
    if [[ -z "$AUTEUR" || ! -x "$AUTEUR" ]]; then
        say "FAIL  the auteur binary was not found (${LAUNCH_AUTEUR:-not on PATH}): install it, or set LAUNCH_AUTEUR"
        exit 1
    fi
}

# ---- role ----

check_role() {
    local role="$1" rank="${AUTEUR_RANK:-}" world="${AUTEUR_WORLD_SIZE:-1}"
    if ! is_uint "$world" || ((world < 1)); then
        usage_error "AUTEUR_WORLD_SIZE must be a positive integer, got \"$world\""
    fi
    if [[ -n "$rank" ]]; then
        is_uint "$rank" || usage_error "AUTEUR_RANK must be a non-negative integer, got \"$rank\""
        ((rank < world)) || usage_error "AUTEUR_RANK=$rank is not below AUTEUR_WORLD_SIZE=$world"
    fi
    if [[ "$role" == serve && -n "$rank" && "$rank" != 0 ]]; then
        usage_error "serve is rank 0, but AUTEUR_RANK=$rank: start \`$PROG worker\` on this node"
    fi
    if [[ "$role" == worker ]]; then
        [[ "$rank" != 0 ]] || usage_error "a worker is rank 1 or more, but AUTEUR_RANK=0: start \`$PROG serve\`"
        ((world >= 2)) || usage_error "a worker needs AUTEUR_WORLD_SIZE of 2 or more (got $world)"
    fi
    WORLD="$world"
    if [[ -z "$rank" ]]; then
        rank=0
        [[ "$role" == serve ]] || rank=1
    fi
    ok "role $role, rank $rank of $world, $("$AUTEUR" --version)"
}

# ---- GPU ----

check_gpu() {
    if [[ "${AUTEUR_DEVICE:-auto}" == cpu ]]; then
        note "AUTEUR_DEVICE=cpu: no GPU checked"
        return
    fi
    if ! command -v nvidia-smi >/dev/null; then
        fail "NVIDIA driver: nvidia-smi not found (install the driver; in a container, run with the NVIDIA runtime and NVIDIA_DRIVER_CAPABILITIES including utility); AUTEUR_DEVICE=cpu runs without a GPU"
        return
    fi
    local gpus
    if ! gpus="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1)" || [[ -z "$gpus" ]]; then
        fail "GPU: nvidia-smi found no usable GPU: ${gpus:-no output}"
        return
    fi
    local name driver
    IFS=, read -r name driver <<<"$(head -n 1 <<<"$gpus")"
    ok "GPU: $name, driver${driver} ($(wc -l <<<"$gpus") visible)"
}

# ---- RDMA (only for two ranks or more, when NCCL may use it) ----

# The HCA names of NCCL_IB_HCA ("=mlx5_0:1,mlx5_1" -> mlx5_0 mlx5_1); empty when unset or an
# exclusion list (^...), which NCCL resolves itself.
ib_hca_names() {
    local spec="${NCCL_IB_HCA:-}"
    [[ -z "$spec" || "$spec" == ^* ]] && return
    spec="${spec#=}"
    local item
    IFS=, read -ra items <<<"$spec"
    for item in "${items[@]}"; do
        printf '%s\n' "${item%%:*}"
    done
}

check_rdma() {
    if [[ "${AUTEUR_COMM:-auto}" == tcp ]]; then
        note "AUTEUR_COMM=tcp: tensors go over TCP, no RDMA device checked"
        return
    fi
    if [[ "${NCCL_IB_DISABLE:-0}" == 1 ]]; then
        note "NCCL_IB_DISABLE=1: NCCL uses TCP sockets, no RDMA device checked"
        return
    fi
    local sys=/sys/class/infiniband
    local devs=()
    if [[ -d "$sys" ]]; then
        mapfile -t devs < <(ls "$sys")
    fi
    if ((${#devs[@]} == 0)); then
        fail "RDMA: no device in $sys (load mlx5_ib, check the ConnectX-7 link; in a container pass /dev/infiniband); to run without RDMA set NCCL_IB_DISABLE=1 (NCCL over TCP sockets) or AUTEUR_COMM=tcp"
        return
    fi
    if ! compgen -G "/dev/infiniband/uverbs*" >/dev/null; then
        fail "RDMA: no /dev/infiniband/uverbs* device (a container needs --device /dev/infiniband)"
    fi
    local names=() name port_state gid_type gid idx="${NCCL_IB_GID_INDEX:-}"
    mapfile -t names < <(ib_hca_names)
    ((${#names[@]})) || names=("${devs[@]}")
    local active=0
    for name in "${names[@]}"; do
        if [[ ! -d "$sys/$name" ]]; then
            fail "RDMA: NCCL_IB_HCA names $name, which is not among this node's devices (${devs[*]})"
            continue
        fi
        port_state="$(cat "$sys/$name/ports/1/state" 2>/dev/null || echo unknown)"
        if [[ "$port_state" == *ACTIVE* ]]; then
            active=$((active + 1))
        else
            note "RDMA: $name port 1 is $port_state"
        fi
        if [[ -n "$idx" ]]; then
            gid_type="$(cat "$sys/$name/ports/1/gid_attrs/types/$idx" 2>/dev/null || true)"
            gid="$(cat "$sys/$name/ports/1/gids/$idx" 2>/dev/null || true)"
            if [[ -z "$gid_type" || "$gid" == 0000:0000:0000:0000:0000:0000:0000:0000 || -z "$gid" ]]; then
                fail "RDMA: $name has no GID at NCCL_IB_GID_INDEX=$idx (list them: grep . $sys/$name/ports/1/gid_attrs/types/*)"
            elif [[ "$gid_type" != "RoCE v2" ]]; then
                note "RDMA: $name GID $idx is $gid_type, not RoCE v2"
            fi
        fi
    done
    if ((active == 0)); then
        fail "RDMA: no ACTIVE port on ${names[*]} (is the cable in, the link up? ibdev2netdev shows the state)"
    else
        ok "RDMA: ${names[*]} ($active with an active port)"
    fi
    local memlock
    memlock="$(ulimit -l)"
    if [[ "$memlock" != unlimited ]]; then
        fail "RDMA: the locked-memory limit is $memlock KiB; RDMA registration needs it unlimited (systemd LimitMEMLOCK=infinity, docker --ulimit memlock=-1)"
    fi
}

# ---- the cluster token ----

check_token() {
    local file="${AUTEUR_CLUSTER_TOKEN_FILE:-}"
    if [[ -z "$file" ]]; then
        if [[ -n "${AUTEUR_CLUSTER_TOKEN:-}" ]]; then
            note "cluster token from AUTEUR_CLUSTER_TOKEN (a file, AUTEUR_CLUSTER_TOKEN_FILE, keeps it out of the environment)"
        else
            fail "cluster token: set AUTEUR_CLUSTER_TOKEN_FILE to the file holding the token shared by both nodes"
        fi
        return
    fi
    if [[ ! -f "$file" ]]; then
        fail "cluster token: $file does not exist or is not a regular file"
        return
    fi
    if [[ ! -r "$file" ]]; then
        fail "cluster token: $file is not readable by $(id -un) (uid $(id -u))"
        return
    fi
    local mode
    mode="$(stat -L -c '%a' "$file")"
    if (((8#$mode & 8#077) != 0)); then
        fail "cluster token: $file has mode $mode: group and others must have no access (chmod 600 $file)"
    fi
    local token
    token="$(tr -d '[:space:]' <"$file")"
    if ((${#token} < 32)); then
        fail "cluster token: $file holds ${#token} characters, expected at least 32 (openssl rand -hex 32)"
        return
    fi
    ok "cluster token: $file (mode $mode)"
}

# ---- the rendezvous address ----

# Splits AUTEUR_RENDEZVOUS ("host:port", "[v6]:port") into RV_HOST and RV_PORT.
parse_rendezvous() {
    local rv="${AUTEUR_RENDEZVOUS:-}"
    if [[ -z "$rv" ]]; then
        fail "rendezvous: set AUTEUR_RENDEZVOUS to HOST:PORT (rank 0's address on the fast link)"
        return 1
    fi
    RV_PORT="${rv##*:}"
    RV_HOST="${rv%:*}"
    RV_HOST="${RV_HOST#[}"
    RV_HOST="${RV_HOST%]}"
    if [[ -z "$RV_HOST" || "$RV_HOST" == "$rv" ]] || ! is_uint "$RV_PORT" || ((RV_PORT < 1 || RV_PORT > 65535)); then
        fail "rendezvous: \"$rv\" is not HOST:PORT"
        return 1
    fi
}

# Rank 0 listens on the rendezvous address: it must be one of this node's.
check_rendezvous_local() {
    parse_rendezvous || return 0
    case "$RV_HOST" in
    0.0.0.0 | :: | localhost | 127.*)
        note "rendezvous: rank 0 listens on $RV_HOST:$RV_PORT (a worker on another node needs the fast link's address)"
        return
        ;;
    esac
    local addrs="" want
    if command -v ip >/dev/null; then
        addrs="$(ip -o addr show | awk '{print $4}' | cut -d/ -f1)"
    elif command -v hostname >/dev/null; then
        addrs="$(hostname -I 2>/dev/null | tr ' ' '\n')"
    fi
    if [[ -z "$addrs" ]]; then
        note "rendezvous: cannot list this node's addresses (no ip, no hostname -I); $RV_HOST not checked"
        return
    fi
    want="$(getent ahosts "$RV_HOST" | awk '{print $1}' | sort -u || true)"
    if [[ -z "$want" ]]; then
        fail "rendezvous: $RV_HOST does not resolve"
        return
    fi
    local a
    for a in $want; do
        if grep -qxF "$a" <<<"$addrs"; then
            ok "rendezvous: listening on $RV_HOST:$RV_PORT (an address of this node)"
            return
        fi
    done
    fail "rendezvous: $RV_HOST ($(tr '\n' ' ' <<<"$want")) is not an address of this node; rank 0 listens there, so it must be (ip -o addr lists them)"
}

# Rank 1 and up: rank 0 must answer on the rendezvous address (it may still be starting).
check_rendezvous_peer() {
    parse_rendezvous || return 0
    local wait_s="${LAUNCH_PEER_WAIT_SECONDS:-60}" waited=0
    is_uint "$wait_s" || usage_error "LAUNCH_PEER_WAIT_SECONDS must be a non-negative integer, got \"$wait_s\""
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
    while ! timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$RV_HOST" "$RV_PORT" 2>/dev/null; do
        if ((waited >= wait_s)); then
            fail "rendezvous: rank 0 does not answer at $RV_HOST:$RV_PORT after ${wait_s}s (is auteur serve running there with AUTEUR_WORLD_SIZE=$WORLD? a firewall on the link?)"
            return
        fi
        ((waited == 0)) && note "rendezvous: waiting up to ${wait_s}s for rank 0 at $RV_HOST:$RV_PORT"
        sleep 2
        waited=$((waited + 2))
    done
    ok "rendezvous: rank 0 answers at $RV_HOST:$RV_PORT"
}

check_socket_ifname() {
    local spec="${NCCL_SOCKET_IFNAME:-}"
    [[ -z "$spec" || "$spec" == ^* ]] && return
    local exact=0 item found=""
    [[ "$spec" == =* ]] && exact=1 && spec="${spec#=}"
    IFS=, read -ra items <<<"$spec"
    for item in "${items[@]}"; do
        local dev
        for dev in /sys/class/net/*; do
            dev="${dev##*/}"
            if [[ "$dev" == "$item" ]] || { ((exact == 0)) && [[ "$dev" == "$item"* ]]; }; then
                found="$dev"
                break 2
            fi
        done
    done
    if [[ -z "$found" ]]; then
        fail "network: no interface matches NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME} (ibdev2netdev names the ConnectX-7 ones)"
        return
    fi
    local state
    state="$(cat "/sys/class/net/$found/operstate" 2>/dev/null || echo unknown)"
    if [[ "$state" == down ]]; then
        fail "network: $found (NCCL_SOCKET_IFNAME) is down"
    else
        ok "network: $found ($state) for NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME}"
    fi
}

# ---- model and data ----

check_model() {
    local dir="${AUTEUR_MODEL:-}"
    if [[ -z "$dir" ]]; then
        note "AUTEUR_MODEL not set: the build's default model"
        return
    fi
    if [[ ! -d "$dir" ]]; then
        fail "model: $dir is not a folder (AUTEUR_MODEL)"
    elif [[ ! -r "$dir/auteur-model.json" ]]; then
        fail "model: $dir has no readable auteur-model.json (README: Using real Wan2.1 weights)"
    else
        ok "model: $dir"
    fi
}

check_data_dir() {
    local dir="${AUTEUR_DATA_DIR:-./auteur-data}"
    if [[ -d "$dir" ]]; then
        if [[ -w "$dir" ]]; then
            ok "data: $dir"
        else
            fail "data: $dir is not writable by $(id -un) (uid $(id -u))"
        fi
    else
        local parent="$dir"
        while [[ ! -e "$parent" ]]; do parent="$(dirname "$parent")"; done
        if [[ -d "$parent" && -w "$parent" ]]; then
            ok "data: $dir (auteur creates it)"
        else
            fail "data: $dir does not exist and $(id -un) cannot create it in $parent"
        fi
    fi
}

# ---- commands ----

check_node() {
    local role="$1"
    check_role "$role"
    check_gpu
    if ((WORLD > 1)); then
        check_rdma
        check_socket_ifname
        check_token
        if [[ "$role" == serve ]]; then
            check_rendezvous_local
        else
            check_rendezvous_peer
        fi
    fi
    check_model
    [[ "$role" == serve ]] && check_data_dir
    if ((failures > 0)); then
        say "$failures prerequisite(s) missing: $role not started (deploy/RUNBOOK.md, Troubleshooting)"
        exit 1
    fi
}

default_role() {
    local rank="${AUTEUR_RANK:-0}"
    if [[ "$rank" == 0 ]]; then echo serve; else echo worker; fi
}

main() {
    local check_only=0
    if [[ "${1:-}" == --check ]]; then
        check_only=1
        shift
    fi
    local role
    case "${1:-}" in
    serve | worker)
        role="$1"
        shift
        ;;
    "" | -*) role="$(default_role)" ;;
    *)
        ((check_only == 0)) || usage_error "--check takes serve or worker, got \"$1\""
        find_auteur
        exec "$AUTEUR" "$@"
        ;;
    esac
    find_auteur
    check_node "$role"
    if ((check_only)); then
        say "all prerequisites met for $role"
        exit 0
    fi
    say "starting auteur $role"
    exec "$AUTEUR" "$role" "$@"
}

main "$@"
