/* cluster_proto.h - the wire protocol between rank 0 and a worker: framing, the handshake
 * both ends run on every new connection, and the job message.
 *
 * Framing: a 4-byte big-endian length, then that many bytes of one JSON object (UTF-8) with
 * a string "type"; at most CPROTO_MAX_MESSAGE bytes. Anything else is AU_EFORMAT, and the
 * connection is dropped.
 *
 * Handshake (the worker connects; P = HMAC-SHA-256 under the cluster token, hex; nonces are 32
 * fresh random bytes in hex; `session` is "" on the control connection):
 *   worker -> {"type":"hello", "proto", "version", "role": "control"|"data", "rank", "world_size",
 *              "session", "nonce"}
 *   rank 0 -> {"type":"challenge", "proto", "version", "nonce",
 *              "proof": P("auteur-cluster rank0|" role "|" session "|" worker nonce "|" rank 0 nonce)}
 *   worker -> {"type":"auth", "proof": P("auteur-cluster worker|" role "|" session "|" rank 0 nonce "|"
 *              worker nonce), "fingerprint", "transports": [...], "hardware" (control only)}
 *   rank 0 -> {"type":"welcome", "session", "fingerprint"}
 * Each side checks the other's proof (so the token never travels and neither side can be
 * impersonated or replayed), the protocol and Auteur versions, and the worker the model
 * fingerprint rank 0 welcomes it with; rank 0 also checks world size, rank and fingerprint.
 * Either side may answer {"type":"refused", "code", "reason"} instead and close; code is one
 * of the CPROTO_REFUSED_* strings. The protocol version is checked first (at hello), since a
 * peer of another protocol may not understand the rest.
 *
 * After the handshake, on the control connection (tensors never go there):
 *   rank 0 -> comm {transport, id (nccl: the unique id in hex)}, job (cproto_job_to_json),
 *             cancel, abort, bench {bytes, iters}, shutdown, heartbeat
 *   worker -> comm_ready | comm_failed {message}, job_done {id} | job_failed {id, code, message},
 *             bench_done | bench_failed {message}, leaving, heartbeat
 * A data connection (tcp transport) carries nothing after its welcome but the comm's bytes.
 */
#ifndef AU_CLUSTER_PROTO_H
#define AU_CLUSTER_PROTO_H

#include <jansson.h>

#include "pipeline.h"
#include "status.h"

#define CPROTO_VERSION 1
#define CPROTO_MAX_MESSAGE (1 << 20)
#define CPROTO_SESSION_SIZE 33 /* 32 hex digits and a NUL */

/* Why a handshake was refused. Only "busy" (rank 1 still has a session rank 0 has not let go
 * of) is worth retrying as is; the others need an operator. */
#define CPROTO_REFUSED_PROTOCOL "protocol"
#define CPROTO_REFUSED_TOKEN "token"
#define CPROTO_REFUSED_VERSION "version"
#define CPROTO_REFUSED_MODEL "model"
#define CPROTO_REFUSED_WORLD "world"
#define CPROTO_REFUSED_COMM "comm"
#define CPROTO_REFUSED_BUSY "busy"
#define CPROTO_REFUSED_SESSION "session"

/* Send one message; AU_ECOMM when the socket fails, AU_EINVAL when it is too large. */
int cproto_send(int fd, const json_t *msg, au_err *err);
/* Receive one message within timeout_ms (< 0: no limit). *out is a new reference. AU_ECOMM on
 * EOF, a socket error or the timeout; AU_EFORMAT for an oversized or garbled message. */
int cproto_recv(int fd, int timeout_ms, json_t **out, au_err *err);
/* The message's "type" ("" when it has none). */
const char *cproto_type(const json_t *msg);
/* Send {"type": type} alone. */
int cproto_send_type(int fd, const char *type, au_err *err);
/* Send {"type":"refused", code, reason}; errors are ignored (the connection is closed next). */
void cproto_send_refused(int fd, const char *code, const char *reason);

/* What one side says of itself in the handshake. */
typedef struct cproto_self {
    const char *version;     /* AUTEUR_VERSION */
    const char *fingerprint; /* pipeline_model_fingerprint */
    int rank, world_size;
    const char *transports; /* worker: the comms it can join, "tcp" or "tcp,nccl" */
} cproto_self;

/* The worker's side as rank 0 learned it. */
typedef struct cproto_peer {
    char role[8]; /* "control" or "data" */
    int rank, world_size;
    char session[CPROTO_SESSION_SIZE]; /* data connections: the session they join */
    char transports[32];
    json_t *hardware; /* control: a new reference (or NULL), the caller's */
} cproto_peer;

/* Rank 0: run the handshake up to the worker's proof and check it; transport is the comm rank
 * 0 will use. 0: the caller decides and sends cproto_welcome or cproto_send_refused. Else the
 * worker was refused (AU_ECONFLICT, err says why and the worker was told) or the connection
 * failed (AU_ECOMM, AU_EFORMAT). */
int cproto_accept(int fd, const char *token, const cproto_self *self, const char *transport, int timeout_ms,
                  cproto_peer *peer, au_err *err);
int cproto_welcome(int fd, const char *session, const char *fingerprint, au_err *err);

/* Worker: the whole handshake for role ("control" or "data" with session). On success the
 * session rank 0 gave (control) is copied into session_out. AU_ECONFLICT: refused (by rank 0
 * or by this side: wrong token, versions, model); err->msg says why and *refusal_code names
 * it (CPROTO_REFUSED_*, "" when the connection failed instead); AU_ECOMM / AU_EFORMAT: the
 * connection failed. hardware is sent on control connections (may be NULL). */
int cproto_connect(int fd, const char *token, const cproto_self *self, const char *role, const char *session,
                   const json_t *hardware, int timeout_ms, char session_out[CPROTO_SESSION_SIZE],
                   char refusal_code[16], au_err *err);

/* "HOST:PORT" or "[V6]:PORT" split into host and port text. AU_EINVAL when it is neither. */
int cproto_split_address(const char *address, char host[256], char port[8], au_err *err);

/* A fresh session id (32 hex digits). */
int cproto_new_session(char out[CPROTO_SESSION_SIZE], au_err *err);

/* The job message: id, resolved params (seed included) and mode. NULL when out of memory. */
json_t *cproto_job_to_json(const char *job_id, const au_gen_params *resolved, au_parallel mode);
/* Its reverse: params' strings point into msg (keep it alive). AU_EFORMAT naming a bad field. */
int cproto_job_from_json(const json_t *msg, const char **job_id, au_gen_params *params, au_parallel *mode,
                         au_err *err);

#endif
