/* cluster_proto.c - framing, handshake and job message of the cluster protocol (cluster_proto.h).
 *
 * Reads and writes go straight to the socket (no buffering), so after a handshake the next
 * byte on the socket is the first the comm or the next message sends. Waits are bounded with
 * poll(); writes use MSG_NOSIGNAL so a closed peer is an error, not a SIGPIPE.
 */
#include "cluster_proto.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

#define NONCE_BYTES 32
#define HEX_NONCE (2 * NONCE_BYTES + 1)
#define PROOF_LABEL_RANK0 "auteur-cluster rank0|"
#define PROOF_LABEL_WORKER "auteur-cluster worker|"

static double now_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ---- framing ---- */

static int write_all(int fd, const void *buf, size_t n, au_err *err) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return au_errf(err, AU_ECOMM, "sending: %s",
                           w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "the peer stopped reading"
                                                                              : strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* n bytes before deadline_ms (< 0: none); *got says how many arrived before a failure. */
static int read_all(int fd, void *buf, size_t n, double deadline_ms, size_t *got, au_err *err) {
    char *p = buf;
    *got = 0;
    while (*got < n) {
        int wait_ms = -1;
        if (deadline_ms >= 0) {
            double left = deadline_ms - now_mono_ms();
            if (left <= 0)
                return au_errf(err, AU_ECOMM, "no message within the time allowed");
            wait_ms = (int)left + 1;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, wait_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return au_errf(err, AU_ECOMM, "waiting for a message: %s", strerror(errno));
        if (pr == 0)
            continue; /* the deadline check above reports it */
        ssize_t r = recv(fd, p + *got, n - *got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return au_errf(err, AU_ECOMM, "receiving: %s", strerror(errno));
        if (r == 0)
            return au_errf(err, AU_ECOMM, "connection closed by the peer");
        *got += (size_t)r;
    }
    return 0;
}

int cproto_send(int fd, const json_t *msg, au_err *err) {
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return au_errf(err, AU_ENOMEM, "encoding a cluster message: out of memory");
    size_t n = strlen(text);
    int rc = 0;
    if (n > CPROTO_MAX_MESSAGE) {
        rc = au_errf(err, AU_EINVAL, "cluster message of %zu bytes is over the %d-byte limit", n,
                     CPROTO_MAX_MESSAGE);
    } else {
        uint8_t head[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
        rc = write_all(fd, head, 4, err);
        if (rc == 0)
            rc = write_all(fd, text, n, err);
    }
    free(text);
    return rc;
}

int cproto_recv(int fd, int timeout_ms, json_t **out, au_err *err) {
    *out = NULL;
    double deadline = timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
    uint8_t head[4];
    size_t got;
    int rc = read_all(fd, head, 4, deadline, &got, err);
    if (rc)
        return got > 0 ? au_err_prefix(err, "in a message header") : rc;
    uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
    if (n == 0 || n > CPROTO_MAX_MESSAGE)
        return au_errf(err, AU_EFORMAT, "cluster message of %u bytes (must be 1 to %d)", n,
                       CPROTO_MAX_MESSAGE);
    char *text = malloc(n);
    if (!text)
        return au_errf(err, AU_ENOMEM, "receiving a cluster message: out of memory");
    rc = read_all(fd, text, n, deadline, &got, err);
    if (rc) {
        free(text);
        return au_err_prefix(err, "in a message of %u bytes", n);
    }
    json_error_t jerr;
    json_t *msg = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!msg)
        return au_errf(err, AU_EFORMAT, "garbled cluster message: %s", jerr.text);
    if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "type"))) {
        json_decref(msg);
        return au_errf(err, AU_EFORMAT, "garbled cluster message: not an object with a string \"type\"");
    }
    *out = msg;
    return 0;
}

const char *cproto_type(const json_t *msg) {
    const char *t = json_string_value(json_object_get(msg, "type"));
    return t ? t : "";
}

int cproto_send_type(int fd, const char *type, au_err *err) {
    json_t *m = json_pack("{s:s}", "type", type);
    if (!m)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc = cproto_send(fd, m, err);
    json_decref(m);
    return rc;
}

void cproto_send_refused(int fd, const char *code, const char *reason) {
    json_t *m = json_pack("{s:s, s:s, s:s}", "type", "refused", "code", code, "reason", reason);
    au_err ignored;
    if (m)
        cproto_send(fd, m, &ignored);
    json_decref(m);
}

/* ---- proofs ---- */

static void to_hex(const uint8_t *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int random_hex(size_t n_bytes, char *out, au_err *err) {
    uint8_t b[64];
    if (n_bytes > sizeof b || getrandom(b, n_bytes, 0) != (ssize_t)n_bytes)
        return au_errf(err, AU_EIO, "drawing a random nonce: %s", strerror(errno));
    to_hex(b, n_bytes, out);
    return 0;
}

int cproto_new_session(char out[CPROTO_SESSION_SIZE], au_err *err) {
    return random_hex((CPROTO_SESSION_SIZE - 1) / 2, out, err);
}

/* HMAC(token, label role "|" session "|" first "|" second) in hex. */
static int make_proof(const char *token, const char *label, const char *role, const char *session,
                      const char *first, const char *second, char out[65], au_err *err) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s%s|%s|%s|%s", label, role, session, first, second);
    if (n < 0 || n >= (int)sizeof msg)
        return au_errf(err, AU_EINVAL, "handshake fields too long");
    uint8_t mac[32];
    hmac_sha256(token, strlen(token), msg, (size_t)n, mac);
    sha256_hex(mac, out);
    return 0;
}

/* Equal strings, in time independent of where they differ. */
static int same_secret(const char *a, const char *b) {
    size_t n = strlen(a);
    if (n != strlen(b))
        return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int valid_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Receive a message of `want` type; a "refused" is AU_ECONFLICT with its reason and code. */
static int expect(int fd, int timeout_ms, const char *want, json_t **out, char code[16], au_err *err) {
    int rc = cproto_recv(fd, timeout_ms, out, err);
    if (rc)
        return rc;
    const char *type = cproto_type(*out);
    if (strcmp(type, "refused") == 0) {
        const char *c = json_string_value(json_object_get(*out, "code"));
        const char *reason = json_string_value(json_object_get(*out, "reason"));
        if (code)
            snprintf(code, 16, "%s", c ? c : "");
        rc = au_errf(err, AU_ECONFLICT, "%s", reason ? reason : "refused without a reason");
    } else if (strcmp(type, want) != 0) {
        rc = au_errf(err, AU_EFORMAT, "expected a \"%s\" message, got \"%s\"", want, type);
    }
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* Refuse: tell the peer, fill err the same way. */
static int refuse(int fd, const char *code, au_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(int fd, const char *code, au_err *err, const char *fmt, ...) {
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    cproto_send_refused(fd, code, reason);
    return au_errf(err, AU_ECONFLICT, "%s", reason);
}

static const char *str_field(const json_t *m, const char *key) {
    return json_string_value(json_object_get(m, key));
}

/* ---- rank 0 ---- */

static int has_transport(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : p + len;
    }
    return 0;
}

int cproto_accept(int fd, const char *token, const cproto_self *self, const char *transport, int timeout_ms,
                  cproto_peer *peer, au_err *err) {
    memset(peer, 0, sizeof *peer);
    json_t *hello = NULL, *auth = NULL, *challenge = NULL;
    int rc = expect(fd, timeout_ms, "hello", &hello, NULL, err);
    if (rc)
        return rc;
    json_int_t proto = json_integer_value(json_object_get(hello, "proto"));
    const char *version = str_field(hello, "version"), *role = str_field(hello, "role");
    const char *session = str_field(hello, "session"), *nonce_w = str_field(hello, "nonce");
    if (proto != CPROTO_VERSION) {
        rc = refuse(
            fd, CPROTO_REFUSED_PROTOCOL, err,
            "protocol version mismatch: rank 0 speaks cluster protocol %d (Auteur %s), the worker %lld "
            "(Auteur %s)",
            CPROTO_VERSION, self->version, (long long)proto, version ? version : "unknown");
        goto done;
    }
    if (!version || !role || !session || !valid_hex(nonce_w, HEX_NONCE - 1) ||
        (strcmp(role, "control") != 0 && strcmp(role, "data") != 0) ||
        (strcmp(role, "data") == 0 && !valid_hex(session, CPROTO_SESSION_SIZE - 1))) {
        rc = au_errf(err, AU_EFORMAT, "malformed hello");
        goto done;
    }
    snprintf(peer->role, sizeof peer->role, "%s", role);
    snprintf(peer->session, sizeof peer->session, "%s", session);
    peer->rank = (int)json_integer_value(json_object_get(hello, "rank"));
    peer->world_size = (int)json_integer_value(json_object_get(hello, "world_size"));

    char nonce_0[HEX_NONCE], proof_0[65], want[65];
    if ((rc = random_hex(NONCE_BYTES, nonce_0, err)) ||
        (rc = make_proof(token, PROOF_LABEL_RANK0, role, session, nonce_w, nonce_0, proof_0, err)))
        goto done;
    challenge = json_pack("{s:s, s:i, s:s, s:s, s:s}", "type", "challenge", "proto", CPROTO_VERSION,
                          "version", self->version, "nonce", nonce_0, "proof", proof_0);
    if (!challenge) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = cproto_send(fd, challenge, err)) || (rc = expect(fd, timeout_ms, "auth", &auth, NULL, err)) ||
        (rc = make_proof(token, PROOF_LABEL_WORKER, role, session, nonce_0, nonce_w, want, err)))
        goto done;
    const char *proof_w = str_field(auth, "proof"), *fingerprint = str_field(auth, "fingerprint");
    const char *transports = str_field(auth, "transports");
    if (!proof_w || !same_secret(proof_w, want)) {
        rc = refuse(fd, CPROTO_REFUSED_TOKEN, err,
                    "wrong cluster token: the worker could not prove it holds rank 0's");
        goto done;
    }
    if (strcmp(version, self->version) != 0) {
        rc =
            refuse(fd, CPROTO_REFUSED_VERSION, err,
                   "version mismatch: rank 0 runs Auteur %s, the worker Auteur %s (install the same on both)",
                   self->version, version);
        goto done;
    }
    if (peer->world_size != self->world_size || peer->rank < 1 || peer->rank >= self->world_size) {
        rc = refuse(fd, CPROTO_REFUSED_WORLD, err,
                    "world size or rank mismatch: rank 0 has world size %d (workers are ranks 1 to %d), the "
                    "worker says rank %d of %d",
                    self->world_size, self->world_size - 1, peer->rank, peer->world_size);
        goto done;
    }
    if (!fingerprint || strcmp(fingerprint, self->fingerprint) != 0) {
        rc = refuse(
            fd, CPROTO_REFUSED_MODEL, err,
            "model mismatch: rank 0's model fingerprint is %.16s..., the worker's %.16s... (the same model "
            "folder and precision on both)",
            self->fingerprint, fingerprint ? fingerprint : "(none)");
        goto done;
    }
    if (!has_transport(transports, transport)) {
        rc = refuse(fd, CPROTO_REFUSED_COMM, err,
                    "comm mismatch: rank 0 uses the %s comm, the worker can join only %s", transport,
                    transports ? transports : "(none)");
        goto done;
    }
    snprintf(peer->transports, sizeof peer->transports, "%s", transports);
    json_t *hw = json_object_get(auth, "hardware");
    if (json_is_object(hw) && strcmp(role, "control") == 0)
        peer->hardware = json_incref(hw);
done:
    json_decref(hello);
    json_decref(auth);
    json_decref(challenge);
    return rc;
}

int cproto_welcome(int fd, const char *session, const char *fingerprint, au_err *err) {
    json_t *m =
        json_pack("{s:s, s:s, s:s}", "type", "welcome", "session", session, "fingerprint", fingerprint);
    if (!m)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc = cproto_send(fd, m, err);
    json_decref(m);
    return rc;
}

/* ---- worker ---- */

int cproto_connect(int fd, const char *token, const cproto_self *self, const char *role, const char *session,
                   const json_t *hardware, int timeout_ms, char session_out[CPROTO_SESSION_SIZE],
                   char refusal_code[16], au_err *err) {
    refusal_code[0] = '\0';
    char nonce_w[HEX_NONCE], proof_w[65], want[65];
    json_t *hello = NULL, *challenge = NULL, *auth = NULL, *welcome = NULL;
    int rc = random_hex(NONCE_BYTES, nonce_w, err);
    if (rc)
        return rc;
    hello = json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:s, s:s}", "type", "hello", "proto", CPROTO_VERSION,
                      "version", self->version, "role", role, "rank", self->rank, "world_size",
                      self->world_size, "session", session, "nonce", nonce_w);
    if (!hello)
        return au_errf(err, AU_ENOMEM, "out of memory");
    if ((rc = cproto_send(fd, hello, err)) ||
        (rc = expect(fd, timeout_ms, "challenge", &challenge, refusal_code, err)))
        goto done;
    json_int_t proto = json_integer_value(json_object_get(challenge, "proto"));
    const char *version = str_field(challenge, "version"), *nonce_0 = str_field(challenge, "nonce");
    const char *proof_0 = str_field(challenge, "proof");
    if (!version || !valid_hex(nonce_0, HEX_NONCE - 1) || !proof_0) {
        rc = au_errf(err, AU_EFORMAT, "malformed challenge");
        goto done;
    }
    if ((rc = make_proof(token, PROOF_LABEL_RANK0, role, session, nonce_w, nonce_0, want, err)))
        goto done;
    if (!same_secret(proof_0, want)) {
        snprintf(refusal_code, 16, "%s", CPROTO_REFUSED_TOKEN);
        rc = refuse(fd, CPROTO_REFUSED_TOKEN, err,
                    "wrong cluster token: rank 0 could not prove it holds this worker's");
        goto done;
    }
    if (proto != CPROTO_VERSION || strcmp(version, self->version) != 0) {
        snprintf(refusal_code, 16, "%s", CPROTO_REFUSED_VERSION);
        rc = refuse(fd, CPROTO_REFUSED_VERSION, err,
                    "version mismatch: rank 0 runs Auteur %s (cluster protocol %lld), this worker Auteur %s "
                    "(protocol %d)",
                    version, (long long)proto, self->version, CPROTO_VERSION);
        goto done;
    }
    if ((rc = make_proof(token, PROOF_LABEL_WORKER, role, session, nonce_0, nonce_w, proof_w, err)))
        goto done;
    auth = json_pack("{s:s, s:s, s:s, s:s}", "type", "auth", "proof", proof_w, "fingerprint",
                     self->fingerprint, "transports", self->transports);
    if (!auth || (hardware && json_object_set(auth, "hardware", (json_t *)hardware) != 0)) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = cproto_send(fd, auth, err)) ||
        (rc = expect(fd, timeout_ms, "welcome", &welcome, refusal_code, err)))
        goto done;
    const char *given = str_field(welcome, "session"), *fingerprint = str_field(welcome, "fingerprint");
    if (!valid_hex(given, CPROTO_SESSION_SIZE - 1) || !fingerprint) {
        rc = au_errf(err, AU_EFORMAT, "malformed welcome");
        goto done;
    }
    if (strcmp(fingerprint, self->fingerprint) != 0) {
        snprintf(refusal_code, 16, "%s", CPROTO_REFUSED_MODEL);
        rc = refuse(fd, CPROTO_REFUSED_MODEL, err,
                    "model mismatch: rank 0's model fingerprint is %.16s..., this worker's %.16s...",
                    fingerprint, self->fingerprint);
        goto done;
    }
    snprintf(session_out, CPROTO_SESSION_SIZE, "%s", given);
done:
    json_decref(hello);
    json_decref(challenge);
    json_decref(auth);
    json_decref(welcome);
    return rc;
}

/* ---- addresses ---- */

int cproto_split_address(const char *address, char host[256], char port[8], au_err *err) {
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || !colon[1] || strlen(colon + 1) >= 8)
        return au_errf(err, AU_EINVAL, "\"%s\": expected HOST:PORT", address);
    size_t hlen = (size_t)(colon - address);
    const char *h = address;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']')
        h++, hlen -= 2;
    if (hlen == 0 || hlen >= 256)
        return au_errf(err, AU_EINVAL, "\"%s\": expected HOST:PORT", address);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, 8, "%s", colon + 1);
    return 0;
}

/* ---- the job ---- */

json_t *cproto_job_to_json(const char *job_id, const au_gen_params *q, au_parallel mode) {
    json_t *m = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:I, s:s}", "type", "job", "id", job_id, "prompt",
        q->prompt ? q->prompt : "", "width", q->width, "height", q->height, "frames", q->frames, "steps",
        q->steps, "guidance_scale", (double)q->guidance_scale, "shift", (double)q->shift, "sampler",
        q->sampler ? q->sampler : "", "seed", (json_int_t)q->seed, "mode", pipeline_parallel_name(mode));
    if (m && json_object_set_new(m, "negative_prompt",
                                 q->negative_prompt ? json_string(q->negative_prompt) : json_null()) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

int cproto_job_from_json(const json_t *msg, const char **job_id, au_gen_params *q, au_parallel *mode,
                         au_err *err) {
    pipeline_params_init(q);
    const char *mode_name = str_field(msg, "mode");
    *job_id = str_field(msg, "id");
    q->prompt = str_field(msg, "prompt");
    q->sampler = str_field(msg, "sampler");
    const json_t *neg = json_object_get(msg, "negative_prompt");
    q->negative_prompt = json_string_value(neg);
    if (!*job_id || !q->prompt || !q->sampler || !mode_name || !(json_is_string(neg) || json_is_null(neg)))
        return au_errf(err, AU_EFORMAT, "job message: id, prompt, negative_prompt, sampler or mode missing");
    if (pipeline_parallel_from_name(mode_name, mode) != 0)
        return au_errf(err, AU_EFORMAT, "job message: unknown mode \"%s\"", mode_name);
    static const char *const ints[] = {"width", "height", "frames", "steps"};
    int *targets[] = {&q->width, &q->height, &q->frames, &q->steps};
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(msg, ints[i]);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 20)
            return au_errf(err, AU_EFORMAT, "job message: %s must be a positive integer", ints[i]);
        *targets[i] = (int)json_integer_value(v);
    }
    const json_t *g = json_object_get(msg, "guidance_scale"), *s = json_object_get(msg, "shift");
    const json_t *seed = json_object_get(msg, "seed");
    if (!json_is_number(g) || !json_is_number(s) || !isfinite(json_number_value(g)) ||
        !isfinite(json_number_value(s)))
        return au_errf(err, AU_EFORMAT, "job message: guidance_scale and shift must be numbers");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
        return au_errf(err, AU_EFORMAT, "job message: seed must be a non-negative integer");
    q->guidance_scale = (float)json_number_value(g);
    q->shift = (float)json_number_value(s);
    q->seed = (int64_t)json_integer_value(seed);
    return 0;
}
