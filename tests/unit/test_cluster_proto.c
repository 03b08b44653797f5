// deps: au_server
/* test_cluster_proto.c - the cluster protocol over socketpairs: framing (round trip, oversized,
 * empty, garbled, not an object, EOF, EOF mid-message, timeout), the handshake accepted (control
 * and data roles), refused for a wrong token (each side catching the other), protocol, version,
 * model, world size, rank and comm mismatches with the reason both sides see, a malformed
 * hello, the job message round trip and its bad fields, and address splitting.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/cluster_proto.h"
#include "tests/check.h"

#define TOKEN "0123456789abcdef-cluster-token"
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TIMEOUT_MS 5000

static void make_pair(int fds[2]) {
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socketpair");
}

static void write_raw(int fd, const void *data, size_t n) {
    REQUIRE(write(fd, data, n) == (ssize_t)n, "write");
}

static void write_frame(int fd, const char *text) {
    size_t n = strlen(text);
    uint8_t head[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    write_raw(fd, head, 4);
    write_raw(fd, text, n);
}

/* ---- framing ---- */

static void test_round_trip(void) {
    int fds[2];
    make_pair(fds);
    au_err err;
    json_t *m =
        json_pack("{s:s, s:s, s:i}", "type", "job", "prompt", "a cat \xc3\xa9 \xe2\x9c\x93", "steps", 7);
    CHECK(cproto_send(fds[0], m, &err) == 0, "%s", err.msg);
    json_t *got = NULL;
    CHECK(cproto_recv(fds[1], TIMEOUT_MS, &got, &err) == 0, "%s", err.msg);
    CHECK(got && json_equal(m, got), "the message came back different");
    CHECK(strcmp(cproto_type(got), "job") == 0, "type %s", cproto_type(got));
    json_decref(got);
    CHECK(cproto_send_type(fds[0], "heartbeat", &err) == 0, "%s", err.msg);
    CHECK(cproto_recv(fds[1], TIMEOUT_MS, &got, &err) == 0 && strcmp(cproto_type(got), "heartbeat") == 0,
          "heartbeat: %s", err.msg);
    json_decref(got);
    json_decref(m);
    close(fds[0]);
    close(fds[1]);
}

static void test_send_too_large(void) {
    int fds[2];
    make_pair(fds);
    au_err err;
    char *big = malloc(CPROTO_MAX_MESSAGE + 1);
    memset(big, 'x', CPROTO_MAX_MESSAGE);
    big[CPROTO_MAX_MESSAGE] = '\0';
    json_t *m = json_pack("{s:s, s:s}", "type", "job", "prompt", big);
    CHECK(cproto_send(fds[0], m, &err) == AU_EINVAL && strstr(err.msg, "limit"), "%s", err.msg);
    json_decref(m);
    free(big);
    close(fds[0]);
    close(fds[1]);
}

/* What cproto_recv makes of raw bytes followed by the writer closing. */
static int recv_raw(const void *bytes, size_t n, au_err *err) {
    int fds[2];
    make_pair(fds);
    write_raw(fds[0], bytes, n);
    close(fds[0]);
    json_t *got = NULL;
    int rc = cproto_recv(fds[1], TIMEOUT_MS, &got, err);
    json_decref(got);
    close(fds[1]);
    return rc;
}

static void test_bad_frames(void) {
    au_err err;
    const uint8_t oversized[4] = {0x7f, 0xff, 0xff, 0xff};
    CHECK(recv_raw(oversized, 4, &err) == AU_EFORMAT && strstr(err.msg, "bytes"), "oversized: %s", err.msg);
    const uint8_t empty[4] = {0, 0, 0, 0};
    CHECK(recv_raw(empty, 4, &err) == AU_EFORMAT, "empty: %s", err.msg);
    const uint8_t garbled[] = {0, 0, 0, 6, '{', '"', 't', 'y', 'p', 'e'};
    CHECK(recv_raw(garbled, sizeof garbled, &err) == AU_EFORMAT && strstr(err.msg, "garbled"), "garbled: %s",
          err.msg);
    const uint8_t array[] = {0, 0, 0, 2, '[', ']'};
    CHECK(recv_raw(array, sizeof array, &err) == AU_EFORMAT, "array: %s", err.msg);
    const uint8_t untyped[] = {0, 0, 0, 8, '{', '"', 'a', '"', ':', '1', '}', ' '};
    CHECK(recv_raw(untyped, sizeof untyped, &err) == AU_EFORMAT && strstr(err.msg, "type"), "untyped: %s",
          err.msg);
    CHECK(recv_raw("", 0, &err) == AU_ECOMM && strstr(err.msg, "closed"), "EOF: %s", err.msg);
    const uint8_t cut[] = {0, 0, 0, 20, '{', '"'};
    CHECK(recv_raw(cut, sizeof cut, &err) == AU_ECOMM && strstr(err.msg, "20 bytes"), "cut: %s", err.msg);
    const uint8_t cut_head[] = {0, 0};
    CHECK(recv_raw(cut_head, sizeof cut_head, &err) == AU_ECOMM && strstr(err.msg, "header"),
          "cut header: %s", err.msg);
}

static void test_timeout(void) {
    int fds[2];
    make_pair(fds);
    json_t *got = NULL;
    au_err err;
    CHECK(cproto_recv(fds[1], 100, &got, &err) == AU_ECOMM && strstr(err.msg, "time"), "%s", err.msg);
    CHECK(got == NULL, "a message from nowhere");
    close(fds[0]);
    close(fds[1]);
}

/* ---- handshake ---- */

typedef struct server_side {
    int fd;
    const char *token, *transport;
    cproto_self self;
    const char *welcome_fingerprint; /* NULL: self's */
    int rc;
    au_err err;
    cproto_peer peer;
} server_side;

static void *serve_one(void *arg) {
    server_side *s = arg;
    s->rc = cproto_accept(s->fd, s->token, &s->self, s->transport, TIMEOUT_MS, &s->peer, &s->err);
    if (s->rc == 0)
        s->rc =
            cproto_welcome(s->fd, "0123456789abcdef0123456789abcdef",
                           s->welcome_fingerprint ? s->welcome_fingerprint : s->self.fingerprint, &s->err);
    return NULL;
}

typedef struct outcome {
    int server_rc, client_rc;
    au_err server_err, client_err;
    char code[16], session[CPROTO_SESSION_SIZE];
    cproto_peer peer;
} outcome;

/* One handshake between a rank 0 (token0, self0, transport) and a worker (token1, self1). */
static outcome handshake(const char *token0, cproto_self self0, const char *transport, const char *welcome_fp,
                         const char *token1, cproto_self self1, const char *role, const char *session) {
    int fds[2];
    make_pair(fds);
    server_side s = {.fd = fds[0],
                     .token = token0,
                     .transport = transport,
                     .self = self0,
                     .welcome_fingerprint = welcome_fp};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, serve_one, &s) == 0, "thread");
    outcome o;
    memset(&o, 0, sizeof o);
    json_t *hw = json_pack("{s:{s:s}}", "host", "hostname", "node1");
    o.client_rc = cproto_connect(fds[1], token1, &self1, role, session, hw, TIMEOUT_MS, o.session, o.code,
                                 &o.client_err);
    close(fds[1]); /* a refused worker hangs up; rank 0's wait ends */
    pthread_join(t, NULL);
    close(fds[0]);
    json_decref(hw);
    o.server_rc = s.rc;
    o.server_err = s.err;
    o.peer = s.peer;
    return o;
}

static cproto_self rank0(void) {
    return (cproto_self){"1.0.0", FP_A, 0, 2, NULL};
}

static cproto_self worker(void) {
    return (cproto_self){"1.0.0", FP_A, 1, 2, "tcp"};
}

static void test_accepted(void) {
    outcome o = handshake(TOKEN, rank0(), "tcp", NULL, TOKEN, worker(), "control", "");
    CHECK(o.server_rc == 0, "rank 0: %s", o.server_err.msg);
    CHECK(o.client_rc == 0, "worker: %s", o.client_err.msg);
    CHECK(strcmp(o.session, "0123456789abcdef0123456789abcdef") == 0, "session %s", o.session);
    CHECK(strcmp(o.peer.role, "control") == 0 && o.peer.rank == 1 && o.peer.world_size == 2, "peer %s %d %d",
          o.peer.role, o.peer.rank, o.peer.world_size);
    CHECK(o.peer.hardware &&
              strcmp(json_string_value(json_object_get(json_object_get(o.peer.hardware, "host"), "hostname")),
                     "node1") == 0,
          "the worker's hardware report did not arrive");
    json_decref(o.peer.hardware);

    cproto_self both = worker();
    both.transports = "tcp,nccl";
    o = handshake(TOKEN, rank0(), "nccl", NULL, TOKEN, both, "data", "0123456789abcdef0123456789abcdef");
    CHECK(o.server_rc == 0 && o.client_rc == 0, "data role: %s / %s", o.server_err.msg, o.client_err.msg);
    CHECK(strcmp(o.peer.role, "data") == 0 && strcmp(o.peer.session, "0123456789abcdef0123456789abcdef") == 0,
          "data peer %s %s", o.peer.role, o.peer.session);
    CHECK(o.peer.hardware == NULL, "a data connection carries no hardware report");
}

static void test_wrong_token(void) {
    /* the worker checks rank 0's proof first and refuses it; rank 0 hears why */
    outcome o = handshake(TOKEN, rank0(), "tcp", NULL, TOKEN "-other", worker(), "control", "");
    CHECK(o.client_rc == AU_ECONFLICT && strcmp(o.code, CPROTO_REFUSED_TOKEN) == 0, "worker: %d %s %s",
          o.client_rc, o.code, o.client_err.msg);
    CHECK(strstr(o.client_err.msg, "wrong cluster token"), "worker: %s", o.client_err.msg);
    CHECK(o.server_rc == AU_ECONFLICT && strstr(o.server_err.msg, "wrong cluster token"), "rank 0: %d %s",
          o.server_rc, o.server_err.msg);
}

/* A worker that does not check rank 0's proof and answers with a made-up one. */
static void test_forged_proof_refused(void) {
    int fds[2];
    make_pair(fds);
    server_side s = {.fd = fds[0], .token = TOKEN, .transport = "tcp", .self = rank0()};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, serve_one, &s) == 0, "thread");
    au_err err;
    write_frame(fds[1],
                "{\"type\":\"hello\",\"proto\":1,\"version\":\"1.0.0\",\"role\":\"control\",\"rank\":1,"
                "\"world_size\":2,\"session\":\"\",\"nonce\":"
                "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}");
    json_t *m = NULL;
    CHECK(cproto_recv(fds[1], TIMEOUT_MS, &m, &err) == 0 && strcmp(cproto_type(m), "challenge") == 0,
          "challenge: %s", err.msg);
    CHECK(m && strlen(json_string_value(json_object_get(m, "proof"))) == 64, "the challenge carries a proof");
    char *text = m ? json_dumps(m, 0) : NULL;
    CHECK(text && !strstr(text, TOKEN), "the token went over the wire");
    free(text);
    json_decref(m);
    write_frame(fds[1], "{\"type\":\"auth\",\"proof\":\"" FP_B "\",\"fingerprint\":\"" FP_A
                        "\",\"transports\":\"tcp\"}");
    CHECK(cproto_recv(fds[1], TIMEOUT_MS, &m, &err) == 0 && strcmp(cproto_type(m), "refused") == 0,
          "refusal: %s", err.msg);
    CHECK(m && strcmp(json_string_value(json_object_get(m, "code")), CPROTO_REFUSED_TOKEN) == 0, "code");
    json_decref(m);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    CHECK(s.rc == AU_ECONFLICT && strstr(s.err.msg, "wrong cluster token"), "rank 0: %s", s.err.msg);
}

static void test_protocol_mismatch(void) {
    int fds[2];
    make_pair(fds);
    server_side s = {.fd = fds[0], .token = TOKEN, .transport = "tcp", .self = rank0()};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, serve_one, &s) == 0, "thread");
    write_frame(fds[1], "{\"type\":\"hello\",\"proto\":99,\"version\":\"9.0.0\"}");
    json_t *m = NULL;
    au_err err;
    CHECK(cproto_recv(fds[1], TIMEOUT_MS, &m, &err) == 0 && strcmp(cproto_type(m), "refused") == 0, "%s",
          err.msg);
    const char *reason = m ? json_string_value(json_object_get(m, "reason")) : NULL;
    CHECK(reason && strstr(reason, "protocol") && strstr(reason, "99") && strstr(reason, "9.0.0"),
          "reason %s", reason ? reason : "(none)");
    json_decref(m);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    CHECK(s.rc == AU_ECONFLICT, "rank 0: %d %s", s.rc, s.err.msg);
}

static void test_malformed_hello(void) {
    int fds[2];
    make_pair(fds);
    server_side s = {.fd = fds[0], .token = TOKEN, .transport = "tcp", .self = rank0()};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, serve_one, &s) == 0, "thread");
    /* a data connection without a session */
    write_frame(fds[1], "{\"type\":\"hello\",\"proto\":1,\"version\":\"1.0.0\",\"role\":\"data\",\"rank\":1,"
                        "\"world_size\":2,\"session\":\"\",\"nonce\":"
                        "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}");
    pthread_join(t, NULL);
    close(fds[0]);
    close(fds[1]);
    CHECK(s.rc == AU_EFORMAT && strstr(s.err.msg, "hello"), "rank 0: %d %s", s.rc, s.err.msg);
}

/* Rank 0 refuses after checking the proof: both sides name the mismatch. */
static void expect_refused(const char *what, outcome o, const char *code, const char *needle) {
    CHECK(o.server_rc == AU_ECONFLICT && strstr(o.server_err.msg, needle), "%s: rank 0: %d %s", what,
          o.server_rc, o.server_err.msg);
    CHECK(o.client_rc == AU_ECONFLICT && strcmp(o.code, code) == 0 && strstr(o.client_err.msg, needle),
          "%s: worker: %d %s %s", what, o.client_rc, o.code, o.client_err.msg);
}

static void test_mismatches(void) {
    cproto_self w = worker();
    w.version = "1.0.1";
    outcome o = handshake(TOKEN, rank0(), "tcp", NULL, TOKEN, w, "control", "");
    expect_refused("version", o, CPROTO_REFUSED_VERSION, "version mismatch");
    CHECK(strstr(o.client_err.msg, "1.0.1") && strstr(o.client_err.msg, "1.0.0"), "both versions named: %s",
          o.client_err.msg);

    w = worker();
    w.fingerprint = FP_B;
    expect_refused("model", handshake(TOKEN, rank0(), "tcp", NULL, TOKEN, w, "control", ""),
                   CPROTO_REFUSED_MODEL, "model mismatch");

    w = worker();
    w.world_size = 3;
    expect_refused("world", handshake(TOKEN, rank0(), "tcp", NULL, TOKEN, w, "control", ""),
                   CPROTO_REFUSED_WORLD, "world size");
    w = worker();
    w.rank = 0;
    expect_refused("rank", handshake(TOKEN, rank0(), "tcp", NULL, TOKEN, w, "control", ""),
                   CPROTO_REFUSED_WORLD, "says rank 0 of 2");

    expect_refused("comm", handshake(TOKEN, rank0(), "nccl", NULL, TOKEN, worker(), "control", ""),
                   CPROTO_REFUSED_COMM, "nccl");

    /* rank 0 welcomes with another model: the worker refuses on its side */
    o = handshake(TOKEN, rank0(), "tcp", FP_B, TOKEN, worker(), "control", "");
    CHECK(o.client_rc == AU_ECONFLICT && strcmp(o.code, CPROTO_REFUSED_MODEL) == 0, "welcome model: %s",
          o.client_err.msg);
    json_decref(o.peer.hardware);

    /* a rank 0 of another version: the worker refuses it from the challenge */
    cproto_self r = rank0();
    r.version = "2.0.0";
    o = handshake(TOKEN, r, "tcp", NULL, TOKEN, worker(), "control", "");
    CHECK(o.client_rc == AU_ECONFLICT && strcmp(o.code, CPROTO_REFUSED_VERSION) == 0 &&
              strstr(o.client_err.msg, "2.0.0"),
          "rank 0 version: %s", o.client_err.msg);
    CHECK(o.server_rc == AU_ECONFLICT && strstr(o.server_err.msg, "version mismatch"), "rank 0 told: %s",
          o.server_err.msg);
}

/* ---- job message ---- */

static void test_job_message(void) {
    au_gen_params q;
    pipeline_params_init(&q);
    q.prompt = "a red fox";
    q.negative_prompt = NULL;
    q.width = 64;
    q.height = 48;
    q.frames = 9;
    q.steps = 4;
    q.guidance_scale = 5.123456f;
    q.shift = 3.0f;
    q.sampler = "unipc";
    q.seed = 9007199254740993LL;
    json_t *m = cproto_job_to_json("video_1", &q, AU_PARALLEL_ULYSSES);
    REQUIRE(m, "job json");
    /* through the wire and back */
    int fds[2];
    make_pair(fds);
    au_err err;
    json_t *got = NULL;
    CHECK(cproto_send(fds[0], m, &err) == 0 && cproto_recv(fds[1], TIMEOUT_MS, &got, &err) == 0, "%s",
          err.msg);
    close(fds[0]);
    close(fds[1]);
    const char *id;
    au_gen_params r;
    au_parallel mode;
    CHECK(got && cproto_job_from_json(got, &id, &r, &mode, &err) == 0, "%s", err.msg);
    CHECK(strcmp(id, "video_1") == 0 && mode == AU_PARALLEL_ULYSSES, "id %s mode %d", id, mode);
    CHECK(strcmp(r.prompt, q.prompt) == 0 && r.negative_prompt == NULL && strcmp(r.sampler, "unipc") == 0,
          "strings");
    CHECK(r.width == 64 && r.height == 48 && r.frames == 9 && r.steps == 4, "sizes");
    CHECK(r.guidance_scale == q.guidance_scale && r.shift == q.shift && r.seed == q.seed, "%.9g %.9g %lld",
          r.guidance_scale, r.shift, (long long)r.seed);
    json_decref(got);

    q.negative_prompt = "blurry";
    json_t *m2 = cproto_job_to_json("video_2", &q, AU_PARALLEL_CFG);
    CHECK(cproto_job_from_json(m2, &id, &r, &mode, &err) == 0 && strcmp(r.negative_prompt, "blurry") == 0 &&
              mode == AU_PARALLEL_CFG,
          "negative prompt: %s", err.msg);
    json_object_set_new(m2, "mode", json_string("ring"));
    CHECK(cproto_job_from_json(m2, &id, &r, &mode, &err) == AU_EFORMAT && strstr(err.msg, "ring"), "%s",
          err.msg);
    json_decref(m2);

    json_object_set_new(m, "steps", json_string("4"));
    CHECK(cproto_job_from_json(m, &id, &r, &mode, &err) == AU_EFORMAT && strstr(err.msg, "steps"), "%s",
          err.msg);
    json_object_set_new(m, "steps", json_integer(4));
    json_object_set_new(m, "seed", json_integer(-1));
    CHECK(cproto_job_from_json(m, &id, &r, &mode, &err) == AU_EFORMAT && strstr(err.msg, "seed"), "%s",
          err.msg);
    json_object_del(m, "prompt");
    CHECK(cproto_job_from_json(m, &id, &r, &mode, &err) == AU_EFORMAT && strstr(err.msg, "prompt"), "%s",
          err.msg);
    json_decref(m);
}

static void test_addresses(void) {
    char host[256], port[8];
    au_err err;
    CHECK(cproto_split_address("192.168.100.1:29500", host, port, &err) == 0 &&
              strcmp(host, "192.168.100.1") == 0 && strcmp(port, "29500") == 0,
          "v4");
    CHECK(cproto_split_address("[fe80::1]:29500", host, port, &err) == 0 && strcmp(host, "fe80::1") == 0 &&
              strcmp(port, "29500") == 0,
          "v6");
    CHECK(cproto_split_address("node0", host, port, &err) == AU_EINVAL, "no port");
    CHECK(cproto_split_address(":29500", host, port, &err) == AU_EINVAL, "no host");
    CHECK(cproto_split_address("node0:", host, port, &err) == AU_EINVAL, "empty port");
}

int main(void) {
    test_round_trip();
    test_send_too_large();
    test_bad_frames();
    test_timeout();
    test_accepted();
    test_wrong_token();
    test_forged_proof_refused();
    test_protocol_mismatch();
    test_malformed_hello();
    test_mismatches();
    test_job_message();
    test_addresses();
    return check_exit_code();
}
