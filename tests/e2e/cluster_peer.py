"""cluster_peer.py - a test double of the cluster protocol (server/cluster_proto.h), written
from the protocol's description, for the end-to-end tests of test_cluster.py: framing, the
handshake of a worker (connect_worker) and of rank 0 (serve_one_rank0), each able to claim
another Auteur version; and a TCP relay whose connections a test can cut (a lost link).
"""

import hashlib
import hmac
import json
import os
import socket
import struct
import threading

PROTO = 1


def send(sock, msg):
    data = json.dumps(msg, separators=(",", ":")).encode("utf-8")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return out


def recv(sock):
    (n,) = struct.unpack(">I", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, n).decode("utf-8"))


def proof(token, label, role, session, first, second):
    msg = "auteur-cluster %s|%s|%s|%s|%s" % (label, role, session, first, second)
    return hmac.new(token.encode(), msg.encode(), hashlib.sha256).hexdigest()


def connect_worker(address, token, version, fingerprint, rank=1, world_size=2, timeout=10):
    """Join rank 0 at (host, port) as a worker claiming `version`. Returns the message rank 0
    answered the proof with ("welcome" or "refused") and the open socket."""
    sock = socket.create_connection(address, timeout=timeout)
    nonce = os.urandom(32).hex()
    send(sock, {"type": "hello", "proto": PROTO, "version": version, "role": "control", "rank": rank,
                "world_size": world_size, "session": "", "nonce": nonce})
    challenge = recv(sock)
    if challenge["type"] != "challenge":
        return challenge, sock
    want = proof(token, "rank0", "control", "", nonce, challenge["nonce"])
    if not hmac.compare_digest(want, challenge["proof"]):
        raise AssertionError("rank 0 did not prove the token")
    send(sock, {"type": "auth", "proof": proof(token, "worker", "control", "", challenge["nonce"], nonce),
                "fingerprint": fingerprint, "transports": "tcp", "hardware": {"host": {"hostname": "double"}}})
    return recv(sock), sock


def serve_one_rank0(listener, token, version, result):
    """Answer one worker as a rank 0 claiming `version`, with a valid proof; result["answer"] is
    what the worker sent back after the challenge."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        hello = recv(conn)
        nonce = os.urandom(32).hex()
        send(conn, {"type": "challenge", "proto": PROTO, "version": version, "nonce": nonce,
                    "proof": proof(token, "rank0", hello["role"], hello["session"], hello["nonce"], nonce)})
        try:
            result["answer"] = recv(conn)
        except (ConnectionError, OSError) as e:
            result["answer"] = {"type": "closed", "reason": str(e)}


class Relay:
    """Forwards every connection made to its port to target; cut() closes the ones open now
    (as a broken link would) and keeps listening for new ones."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(self.target)
            except OSError:
                a.close()
                continue
            with self.lock:
                self.open += [a, b]
                self.connections += 1
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.open = self.open, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()
        self.cut()
