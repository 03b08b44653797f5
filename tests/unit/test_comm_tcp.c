// deps: au_cpu au_core
/* test_comm_tcp.c - the tcp transport of comm.h between forked ranks.
 *
 * The ranks are child processes joined by a full mesh of socketpairs (world 2) or loopback
 * TCP connections (world 3); each reports through its exit status and a shared mapping,
 * and alarm() ends one that hangs. Checked:
 *  - every op exact on odd sizes, from 0 bytes to several megabytes (both directions at
 *    once), on the CPU backend (in place) and on a staging test double (a host backend not
 *    named "cpu": one download and one upload per op); all_reduce_sum equal bit for bit to
 *    the rank-order sum; world 1 without sockets;
 *  - f8 refused, bf16 sums refused, shapes checked, and the comm still in step afterwards;
 *  - a peer killed in the middle of an op (stopped after sending part of it, then killed):
 *    AU_ECOMM at once, long before the timeout; a peer stopped mid-op or never calling:
 *    AU_ECOMM after timeout_ms, naming it;
 *  - comm_abort from another thread unblocks the op, later ops and wait fail, the peer
 *    learns at once;
 *  - ranks calling different ops or shapes: AU_ECOMM naming both ops on both sides;
 *  - comm_tcp_create refusing bad ranks, timeouts and sockets.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "comm.h"

#define MAX_WORLD 3
#define BIG_BYTES (16u << 20) /* an all_gather that cannot fit in socket buffers */

typedef struct rank_report {
    atomic_int entered; /* the rank is about to call the op under test */
    atomic_int released;
    atomic_int done;
    int rc;
    double seconds; /* how long the op under test took */
    char msg[512];
} rank_report;

typedef struct shared_area {
    rank_report rank[MAX_WORLD];
} shared_area;

typedef void (*rank_fn)(int rank, int world, const int *fds, shared_area *sh);

static shared_area *shared;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Wait (bounded) until *flag is set by another process. */
static void wait_flag(atomic_int *flag, const char *what) {
    for (int i = 0; i < 20000 && !atomic_load(flag); i++)
        sleep_ms(1);
    REQUIRE(atomic_load(flag), "timed out waiting for %s", what);
}

/* A connected pair of loopback TCP sockets. */
static void tcp_pair(int pair[2]) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    REQUIRE(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(listener, 1) == 0 &&
                getsockname(listener, (struct sockaddr *)&addr, &len) == 0,
            "loopback listener: %s", strerror(errno));
    pair[0] = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(pair[0] >= 0 && connect(pair[0], (struct sockaddr *)&addr, sizeof addr) == 0, "connect: %s",
            strerror(errno));
    pair[1] = accept(listener, NULL, NULL);
    REQUIRE(pair[1] >= 0, "accept: %s", strerror(errno));
    close(listener);
}

/* fds[i][j]: rank i's socket to rank j (-1 on the diagonal). */
static void make_mesh(int world, int use_tcp, int fds[MAX_WORLD][MAX_WORLD]) {
    for (int i = 0; i < world; i++) {
        fds[i][i] = -1;
        for (int j = i + 1; j < world; j++) {
            int pair[2];
            if (use_tcp)
                tcp_pair(pair);
            else
                REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0, "socketpair: %s", strerror(errno));
            fds[i][j] = pair[0];
            fds[j][i] = pair[1];
        }
    }
}

/* Fork one process per rank running fn; returns at once with the pids. */
static void start_ranks(int world, int use_tcp, rank_fn fn, pid_t pids[MAX_WORLD]) {
    int fds[MAX_WORLD][MAX_WORLD];
    make_mesh(world, use_tcp, fds);
    memset(shared, 0, sizeof *shared);
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        REQUIRE(pids[r] >= 0, "fork: %s", strerror(errno));
        if (pids[r] == 0) {
            alarm(60);
            for (int i = 0; i < world; i++)
                for (int j = 0; j < world; j++)
                    if (i != r && fds[i][j] >= 0)
                        close(fds[i][j]);
            fn(r, world, fds[r], shared);
            exit(check_exit_code());
        }
    }
    for (int i = 0; i < world; i++)
        for (int j = 0; j < world; j++)
            if (fds[i][j] >= 0)
                close(fds[i][j]);
}

/* Wait for rank r; CHECK it exited 0 unless expect_killed. */
static void join_rank(pid_t pid, int r, const char *scenario, int expect_killed) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    if (expect_killed)
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s: rank %d should have been killed",
              scenario, r);
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: rank %d ended with status 0x%x", scenario,
              r, status);
}

static void run_ranks(int world, int use_tcp, rank_fn fn, const char *scenario) {
    pid_t pids[MAX_WORLD];
    start_ranks(world, use_tcp, fn, pids);
    for (int r = 0; r < world; r++)
        join_rank(pids[r], r, scenario, 0);
}

/* ---- a host backend that is not "cpu": the comm must stage through be_download/be_upload ---- */

static au_backend_ops staged_ops;
static const au_backend_ops *cpu_ops;
static int staged_downloads, staged_uploads;

static int staged_download(au_backend *be, void *host_dst, const au_tensor *src, au_err *err) {
    staged_downloads++;
    return cpu_ops->download(be, host_dst, src, err);
}

static int staged_upload(au_backend *be, au_tensor *dst, const void *host_src, au_err *err) {
    staged_uploads++;
    return cpu_ops->upload(be, dst, host_src, err);
}

/* A CPU backend, or the staging double over one (*wrapped keeps the CPU one to destroy). */
static au_backend *backend_open(int staged, au_backend **wrapped) {
    au_err err = {0};
    au_backend *cpu = NULL;
    REQUIRE(be_cpu_create(&cpu, 1, &err) == 0, "be_cpu_create: %s", err.msg);
    *wrapped = cpu;
    if (!staged)
        return cpu;
    cpu_ops = cpu->ops;
    staged_ops = *cpu->ops;
    staged_ops.name = "staged";
    staged_ops.download = staged_download;
    staged_ops.upload = staged_upload;
    static au_backend staged_be;
    staged_be = *cpu;
    staged_be.ops = &staged_ops;
    return &staged_be;
}

/* ---- exact results ---- */

static uint8_t pattern_byte(int from_rank, int block, size_t i) {
    uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)(from_rank * 40503 + block * 977 + 1);
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    return (uint8_t)(x ^ (x >> 15));
}

static void *alloc_bytes(size_t n) {
    void *p = malloc(n ? n : 1);
    REQUIRE(p, "out of memory (%zu bytes)", n);
    return p;
}

typedef struct gather_case {
    au_dtype dtype;
    int ndim;
    int64_t shape[3];
} gather_case;

static void check_all_gather(au_comm *c, const gather_case *gc, int *n_ops) {
    au_err err = {0};
    int world = c->world;
    au_tensor in = au_tensor_make(gc->dtype, NULL, gc->ndim, gc->shape);
    size_t block = au_nbytes(&in);
    int64_t out_shape[3] = {gc->shape[0] * world, gc->shape[1], gc->shape[2]};
    uint8_t *in_bytes = alloc_bytes(block), *out_bytes = alloc_bytes(block * (size_t)world);
    for (size_t i = 0; i < block; i++)
        in_bytes[i] = pattern_byte(c->rank, 0, i);
    memset(out_bytes, 0xa5, block * (size_t)world);
    in.data = block ? in_bytes : NULL;
    au_tensor out = au_tensor_make(gc->dtype, block ? out_bytes : NULL, gc->ndim, out_shape);
    int rc = comm_all_gather(c, &out, &in, &err);
    CHECK(rc == 0, "all_gather %zu bytes %s: %s", block, au_dtype_name(gc->dtype), err.msg);
    (*n_ops)++;
    for (int j = 0; rc == 0 && j < world; j++) {
        size_t bad = block;
        for (size_t i = 0; i < block && bad == block; i++)
            if (out_bytes[(size_t)j * block + i] != pattern_byte(j, 0, i))
                bad = i;
        CHECK(bad == block, "rank %d: all_gather of %zu bytes: block %d wrong at byte %zu", c->rank, block, j,
              bad);
    }
    free(in_bytes);
    free(out_bytes);
}

static void check_all_to_all(au_comm *c, au_dtype dtype, int64_t block_elems, int *n_ops) {
    au_err err = {0};
    int world = c->world;
    int64_t shape[2] = {world, block_elems};
    au_tensor in = au_tensor_make(dtype, NULL, 2, shape);
    size_t total = au_nbytes(&in), block = total / (size_t)world;
    uint8_t *in_bytes = alloc_bytes(total), *out_bytes = alloc_bytes(total);
    for (int j = 0; j < world; j++)
        for (size_t i = 0; i < block; i++)
            in_bytes[(size_t)j * block + i] = pattern_byte(c->rank, j, i);
    memset(out_bytes, 0x5a, total);
    in.data = total ? in_bytes : NULL;
    au_tensor out = au_tensor_make(dtype, total ? out_bytes : NULL, 2, shape);
    int rc = comm_all_to_all(c, &out, &in, &err);
    CHECK(rc == 0, "all_to_all blocks of %zu bytes: %s", block, err.msg);
    (*n_ops)++;
    for (int j = 0; rc == 0 && j < world; j++) {
        size_t bad = block;
        for (size_t i = 0; i < block && bad == block; i++)
            if (out_bytes[(size_t)j * block + i] != pattern_byte(j, c->rank, i))
                bad = i;
        CHECK(bad == block, "rank %d: all_to_all of %zu-byte blocks: block %d wrong at byte %zu", c->rank,
              block, j, bad);
    }
    free(in_bytes);
    free(out_bytes);
}

static float reduce_value(int rank, int64_t i) {
    return (float)((rank + 1) * 0.3711) * (float)((i % 1013) - 500) + 1.0f / (float)(rank + 3 + i % 7);
}

static void check_all_reduce(au_comm *c, int64_t n, int *n_ops) {
    au_err err = {0};
    float *buf = alloc_bytes((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        buf[i] = reduce_value(c->rank, i);
    au_tensor t = au_tensor_make(AU_F32, n ? buf : NULL, 1, &n);
    int rc = comm_all_reduce_sum(c, &t, &err);
    CHECK(rc == 0, "all_reduce_sum of %lld floats: %s", (long long)n, err.msg);
    (*n_ops)++;
    int64_t bad = -1;
    for (int64_t i = 0; rc == 0 && i < n && bad < 0; i++) {
        float want = reduce_value(0, i);
        for (int r = 1; r < c->world; r++)
            want += reduce_value(r, i);
        if (memcmp(&want, &buf[i], sizeof want) != 0)
            bad = i;
    }
    CHECK(bad < 0, "rank %d: all_reduce_sum of %lld floats differs from the rank-order sum at %lld", c->rank,
          (long long)n, (long long)bad);
    free(buf);
}

/* Refused arguments: nothing is sent, so the ranks stay in step. */
static void check_refusals(au_comm *c) {
    au_err err = {0};
    uint8_t bytes[64] = {0};
    float scales[8] = {0};
    int64_t shape[2] = {c->world, 2}, gathered[2] = {c->world * c->world, 2}, wrong[2] = {c->world + 1, 2};
    au_tensor f8 = au_tensor_make(AU_F8_E4M3, bytes, 2, shape);
    f8.scale = scales;
    au_tensor f8_out = au_tensor_make(AU_F8_E4M3, bytes, 2, gathered);
    f8_out.scale = scales;
    CHECK(comm_all_gather(c, &f8_out, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_gather f8: %s",
          err.msg);
    CHECK(comm_all_to_all(c, &f8, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_to_all f8: %s",
          err.msg);
    CHECK(comm_all_reduce_sum(c, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_reduce f8: %s",
          err.msg);
    au_tensor bf16 = au_tensor_make(AU_BF16, bytes, 2, shape);
    CHECK(comm_all_reduce_sum(c, &bf16, &err) == AU_EUNSUPPORTED && strstr(err.msg, "f32 only"),
          "all_reduce bf16: %s", err.msg);
    au_tensor f32 = au_tensor_make(AU_F32, bytes, 2, shape),
              f32_wrong = au_tensor_make(AU_F32, bytes, 2, wrong);
    CHECK(comm_all_gather(c, &f32_wrong, &f32, &err) == AU_EINVAL && strstr(err.msg, "all_gather"),
          "all_gather shape: %s", err.msg);
    CHECK(comm_all_to_all(c, &f32_wrong, &f32_wrong, &err) == AU_EINVAL && strstr(err.msg, "all_to_all"),
          "all_to_all shape: %s", err.msg);
    au_tensor u8 = au_tensor_make(AU_U8, bytes, 2, shape);
    CHECK(comm_all_to_all(c, &u8, &f32, &err) == AU_EINVAL, "all_to_all dtypes: %s", err.msg);
    CHECK(comm_wait(c, &err) == 0, "wait after refusals: %s", err.msg);
}

static void exercise_every_op(au_comm *c) {
    int n_ops = 0;
    au_err err = {0};
    static const gather_case gathers[] = {
        {AU_U8, 2, {0, 3}},   {AU_U8, 2, {1, 1}},     {AU_U8, 3, {3, 7, 5}},
        {AU_BF16, 2, {5, 9}}, {AU_F32, 2, {2, 1000}}, {AU_U8, 1, {3 * 1024 * 1024 + 7}},
    };
    for (size_t i = 0; i < sizeof gathers / sizeof gathers[0]; i++)
        check_all_gather(c, &gathers[i], &n_ops);
    check_refusals(c);
    check_all_to_all(c, AU_U8, 0, &n_ops);
    check_all_to_all(c, AU_U8, 1, &n_ops);
    check_all_to_all(c, AU_F16, 13, &n_ops);
    check_all_to_all(c, AU_F32, 1500001, &n_ops); /* ~6 MB per block */
    static const int64_t reduce_sizes[] = {0, 1, 2, 5, 1000, 1000003};
    for (size_t i = 0; i < sizeof reduce_sizes / sizeof reduce_sizes[0]; i++)
        check_all_reduce(c, reduce_sizes[i], &n_ops);
    CHECK(comm_wait(c, &err) == 0, "wait: %s", err.msg);
    CHECK(n_ops == 16, "ran %d ops", n_ops);
}

static void rank_every_op(int rank, int world, const int *fds, int staged) {
    au_err err = {0};
    au_backend *cpu = NULL, *be = backend_open(staged, &cpu);
    au_comm *c = NULL;
    REQUIRE(comm_tcp_create(&c, be, rank, world, fds, 20000, &err) == 0, "comm_tcp_create: %s", err.msg);
    CHECK(strcmp(c->ops->name, "tcp") == 0 && c->rank == rank && c->world == world, "comm fields");
    exercise_every_op(c);
    if (staged)
        CHECK(staged_downloads == 16 && staged_uploads == 16,
              "staging: %d downloads and %d uploads for 16 ops (one each per op)", staged_downloads,
              staged_uploads);
    comm_destroy(c);
    be_destroy(cpu);
}

static void rank_every_op_cpu(int rank, int world, const int *fds, shared_area *sh) {
    (void)sh;
    rank_every_op(rank, world, fds, 0);
}

static void rank_every_op_staged(int rank, int world, const int *fds, shared_area *sh) {
    (void)sh;
    rank_every_op(rank, world, fds, 1);
}

static void test_world_one(void) {
    au_err err = {0};
    au_backend *cpu = NULL, *be = backend_open(0, &cpu);
    au_comm *c = NULL;
    REQUIRE(comm_tcp_create(&c, be, 0, 1, NULL, 1000, &err) == 0, "world 1: %s", err.msg);
    exercise_every_op(c);
    comm_destroy(c);
    be_destroy(cpu);
}

/* ---- failures ---- */

static au_comm *rank_comm(int rank, int world, const int *fds, int timeout_ms, au_backend **be) {
    au_err err = {0};
    au_comm *c = NULL;
    REQUIRE(be_cpu_create(be, 1, &err) == 0, "be_cpu_create: %s", err.msg);
    REQUIRE(comm_tcp_create(&c, *be, rank, world, fds, timeout_ms, &err) == 0, "comm_tcp_create: %s",
            err.msg);
    return c;
}

/* all_gather of BIG_BYTES: more than the sockets buffer, so a peer that stops is caught mid-op. */
static int big_all_gather(au_comm *c, rank_report *me, au_err *err) {
    uint8_t *in_bytes = calloc(BIG_BYTES, 1), *out_bytes = malloc((size_t)BIG_BYTES * (size_t)c->world);
    REQUIRE(in_bytes && out_bytes, "out of memory");
    int64_t n = BIG_BYTES, n_out = (int64_t)BIG_BYTES * c->world;
    au_tensor in = au_tensor_make(AU_U8, in_bytes, 1, &n), out = au_tensor_make(AU_U8, out_bytes, 1, &n_out);
    atomic_store(&me->entered, 1);
    double t0 = now_seconds();
    int rc = comm_all_gather(c, &out, &in, err);
    me->seconds = now_seconds() - t0;
    me->rc = rc;
    snprintf(me->msg, sizeof me->msg, "%s", rc ? err->msg : "");
    free(in_bytes);
    free(out_bytes);
    return rc;
}

#define KILL_TIMEOUT_MS 10000

/* Rank 1 enters first (and is stopped by the parent once its socket buffer is full), rank 0
 * enters when released, receives part of rank 1's data and blocks; then rank 1 is killed. */
static void rank_killed_mid_op(int rank, int world, const int *fds, shared_area *sh) {
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, KILL_TIMEOUT_MS, &be);
    au_err err = {0};
    if (rank == 0)
        wait_flag(&sh->rank[0].released, "rank 0's release");
    int rc = big_all_gather(c, &sh->rank[rank], &err);
    if (rank == 0) {
        CHECK(rc == AU_ECOMM, "rank 0: a killed peer gave %d (%s)", rc, err.msg);
        CHECK(strstr(err.msg, "rank 1") && strstr(err.msg, "all_gather") && strstr(err.msg, "closed"),
              "rank 0's error names the peer, the op and what happened: %s", err.msg);
        CHECK(sh->rank[0].seconds < KILL_TIMEOUT_MS / 2000.0, "rank 0 took %.2f s, the timeout is %d ms",
              sh->rank[0].seconds, KILL_TIMEOUT_MS);
        CHECK(comm_wait(c, &err) == AU_ECOMM && strstr(err.msg, "failed earlier"), "wait after: %s", err.msg);
    }
    comm_destroy(c);
    be_destroy(be);
}

static void test_peer_killed_mid_op(void) {
    pid_t pids[MAX_WORLD];
    start_ranks(2, 0, rank_killed_mid_op, pids);
    wait_flag(&shared->rank[1].entered, "rank 1 entering");
    sleep_ms(200); /* rank 1 fills its socket buffer and waits in poll */
    REQUIRE(kill(pids[1], SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    atomic_store(&shared->rank[0].released, 1);
    wait_flag(&shared->rank[0].entered, "rank 0 entering");
    sleep_ms(300); /* rank 0 reads what rank 1 sent, then blocks */
    REQUIRE(kill(pids[1], SIGKILL) == 0, "SIGKILL: %s", strerror(errno));
    join_rank(pids[0], 0, "peer killed mid-op", 0);
    join_rank(pids[1], 1, "peer killed mid-op", 1);
    printf("peer killed mid-op: rank 0 failed after %.2f s: %s\n", shared->rank[0].seconds,
           shared->rank[0].msg);
}

#define SILENT_TIMEOUT_MS 600

/* Rank 1 is stopped by the parent in the middle of the op; rank 0 must give up after the timeout. */
static void rank_stopped_mid_op(int rank, int world, const int *fds, shared_area *sh) {
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, SILENT_TIMEOUT_MS, &be);
    au_err err = {0};
    if (rank == 0)
        wait_flag(&sh->rank[0].released, "rank 0's release");
    int rc = big_all_gather(c, &sh->rank[rank], &err);
    if (rank == 0) {
        double s = sh->rank[0].seconds;
        CHECK(rc == AU_ECOMM, "rank 0: a stopped peer gave %d (%s)", rc, err.msg);
        CHECK(strstr(err.msg, "rank 1 made no progress for 600 ms"), "rank 0's error: %s", err.msg);
        CHECK(s >= SILENT_TIMEOUT_MS * 1e-3 * 0.95 && s < 10, "rank 0 gave up after %.2f s, timeout 600 ms",
              s);
    }
    comm_destroy(c);
    be_destroy(be);
}

static void test_peer_stopped_mid_op(void) {
    pid_t pids[MAX_WORLD];
    start_ranks(2, 0, rank_stopped_mid_op, pids);
    wait_flag(&shared->rank[1].entered, "rank 1 entering");
    sleep_ms(100);
    REQUIRE(kill(pids[1], SIGSTOP) == 0, "SIGSTOP: %s", strerror(errno));
    atomic_store(&shared->rank[0].released, 1);
    join_rank(pids[0], 0, "peer stopped mid-op", 0);
    REQUIRE(kill(pids[1], SIGKILL) == 0, "SIGKILL: %s", strerror(errno));
    join_rank(pids[1], 1, "peer stopped mid-op", 1);
    printf("peer stopped mid-op: rank 0 failed after %.2f s: %s\n", shared->rank[0].seconds,
           shared->rank[0].msg);
}

/* Rank 1 never calls the op (alive, silent); rank 0's all_reduce_sum gives up after the timeout. */
static void rank_silent(int rank, int world, const int *fds, shared_area *sh) {
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, SILENT_TIMEOUT_MS, &be);
    au_err err = {0};
    if (rank == 0) {
        float value = 1;
        int64_t one = 1;
        au_tensor t = au_tensor_make(AU_F32, &value, 1, &one);
        double t0 = now_seconds();
        int rc = comm_all_reduce_sum(c, &t, &err);
        double s = now_seconds() - t0;
        CHECK(rc == AU_ECOMM && strstr(err.msg, "all_reduce_sum") &&
                  strstr(err.msg, "rank 1 made no progress"),
              "silent peer: %d %s", rc, err.msg);
        CHECK(s >= SILENT_TIMEOUT_MS * 1e-3 * 0.95 && s < 10, "gave up after %.2f s, timeout 600 ms", s);
        atomic_store(&sh->rank[1].released, 1);
    } else {
        wait_flag(&sh->rank[1].released, "rank 0's verdict");
    }
    comm_destroy(c);
    be_destroy(be);
}

/* ---- abort ---- */

typedef struct abort_job {
    au_comm *comm;
    int delay_ms;
} abort_job;

static void *abort_later(void *arg) {
    abort_job *job = arg;
    sleep_ms(job->delay_ms);
    comm_abort(job->comm);
    return NULL;
}

#define ABORT_TIMEOUT_MS 20000

/* Rank 0 blocks in an all_reduce_sum rank 1 has not called; another thread aborts it. Then
 * rank 1 calls the op and must fail at once: rank 0's abort shut the connection down. */
static void rank_abort(int rank, int world, const int *fds, shared_area *sh) {
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, ABORT_TIMEOUT_MS, &be);
    au_err err = {0};
    float values[5] = {1, 2, 3, 4, 5};
    int64_t n = 5;
    au_tensor t = au_tensor_make(AU_F32, values, 1, &n);
    if (rank == 0) {
        abort_job job = {c, 200};
        pthread_t thread;
        REQUIRE(pthread_create(&thread, NULL, abort_later, &job) == 0, "pthread_create");
        double t0 = now_seconds();
        int rc = comm_all_reduce_sum(c, &t, &err);
        double s = now_seconds() - t0;
        pthread_join(thread, NULL);
        CHECK(rc == AU_ECOMM && strstr(err.msg, "abort"), "aborted op: %d %s", rc, err.msg);
        CHECK(s < ABORT_TIMEOUT_MS / 4000.0, "the aborted op returned after %.2f s", s);
        CHECK(comm_wait(c, &err) == AU_ECOMM && strstr(err.msg, "aborted"), "wait after abort: %s", err.msg);
        t0 = now_seconds();
        CHECK(comm_all_gather(c, &t, &t, &err) == AU_EINVAL, "shapes are still checked first");
        int64_t two = 2 * 5;
        float out[10];
        au_tensor gathered = au_tensor_make(AU_F32, out, 1, &two);
        CHECK(comm_all_gather(c, &gathered, &t, &err) == AU_ECOMM && strstr(err.msg, "aborted"),
              "op after abort: %s", err.msg);
        comm_abort(c); /* twice is harmless */
        atomic_store(&sh->rank[1].released, 1);
        wait_flag(&sh->rank[1].done, "rank 1's op");
    } else {
        wait_flag(&sh->rank[1].released, "rank 0's abort");
        double t0 = now_seconds();
        int rc = comm_all_reduce_sum(c, &t, &err);
        double s = now_seconds() - t0;
        CHECK(rc == AU_ECOMM && strstr(err.msg, "rank 0 closed the connection"),
              "peer of an aborted comm: %d %s", rc, err.msg);
        CHECK(s < ABORT_TIMEOUT_MS / 4000.0, "the peer of an aborted comm failed after %.2f s", s);
        atomic_store(&sh->rank[1].done, 1);
    }
    comm_destroy(c);
    be_destroy(be);
}

/* ---- ranks out of step ---- */

static void rank_mismatched_ops(int rank, int world, const int *fds, shared_area *sh) {
    (void)sh;
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, 5000, &be);
    au_err err = {0};
    float in[16] = {0}, out[32];
    int64_t in_shape[2] = {4, 4}, out_shape[2] = {8, 4}, a2a_shape[2] = {2, 8};
    int rc;
    if (rank == 0) {
        au_tensor a = au_tensor_make(AU_F32, in, 2, in_shape), b = au_tensor_make(AU_F32, out, 2, out_shape);
        rc = comm_all_gather(c, &b, &a, &err);
        CHECK(rc == AU_ECOMM && strstr(err.msg, "rank 1 called all_to_all") &&
                  strstr(err.msg, "this rank called all_gather"),
              "rank 0 of mismatched ops: %d %s", rc, err.msg);
    } else {
        au_tensor a = au_tensor_make(AU_F32, in, 2, a2a_shape), b = au_tensor_make(AU_F32, out, 2, a2a_shape);
        rc = comm_all_to_all(c, &b, &a, &err);
        CHECK(rc == AU_ECOMM && strstr(err.msg, "rank 0 called all_gather") &&
                  strstr(err.msg, "this rank called all_to_all"),
              "rank 1 of mismatched ops: %d %s", rc, err.msg);
    }
    CHECK(comm_wait(c, &err) == AU_ECOMM && strstr(err.msg, "failed earlier"), "wait after a mismatch: %s",
          err.msg);
    comm_destroy(c);
    be_destroy(be);
}

/* Same op, different shapes on rank 2 (world 3): every rank hears of it from rank 2 or a peer. */
static void rank_mismatched_shapes(int rank, int world, const int *fds, shared_area *sh) {
    (void)sh;
    au_backend *be = NULL;
    au_comm *c = rank_comm(rank, world, fds, 5000, &be);
    au_err err = {0};
    float in[20] = {0}, out[60];
    int64_t rows = rank == 2 ? 5 : 4, in_shape[2] = {rows, 4}, out_shape[2] = {rows * world, 4};
    au_tensor a = au_tensor_make(AU_F32, in, 2, in_shape), b = au_tensor_make(AU_F32, out, 2, out_shape);
    int rc = comm_all_gather(c, &b, &a, &err);
    CHECK(rc == AU_ECOMM, "rank %d: mismatched shapes gave %d (%s)", rank, rc, err.msg);
    if (rank == 2)
        CHECK(strstr(err.msg, "64 bytes") && strstr(err.msg, "80 bytes") && strstr(err.msg, "same shapes"),
              "rank 2: %s", err.msg);
    comm_destroy(c);
    be_destroy(be);
}

/* ---- creation ---- */

static void test_create_refusals(void) {
    au_err err = {0};
    au_backend *be = NULL;
    REQUIRE(be_cpu_create(&be, 1, &err) == 0, "be_cpu_create: %s", err.msg);
    au_comm *c = (au_comm *)1;
    int fds[2] = {-1, -1};
    CHECK(comm_tcp_create(&c, be, 2, 2, fds, 1000, &err) == AU_EINVAL && c == NULL, "rank 2 of 2: %s",
          err.msg);
    CHECK(comm_tcp_create(&c, be, 0, 0, fds, 1000, &err) == AU_EINVAL, "world 0: %s", err.msg);
    CHECK(comm_tcp_create(&c, be, 0, 2, fds, 1000, &err) == AU_EINVAL && strstr(err.msg, "rank 1"),
          "missing socket: %s", err.msg);
    int pair[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0, "socketpair");
    fds[1] = pair[0];
    CHECK(comm_tcp_create(&c, be, 0, 2, fds, 0, &err) == AU_EINVAL && strstr(err.msg, "timeout"),
          "timeout 0: %s", err.msg);
    /* the comm took the socket even though it refused: the peer sees it closed */
    char byte;
    CHECK(recv(pair[1], &byte, 1, 0) == 0, "the refused socket was closed");
    close(pair[1]);
    fds[1] = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fds[1] >= 0, "socket");
    CHECK(comm_tcp_create(&c, be, 0, 2, fds, 1000, &err) == AU_EINVAL &&
              strstr(err.msg, "not a stream socket"),
          "datagram socket: %s", err.msg);
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0, "pipe");
    fds[1] = pipe_fds[0];
    CHECK(comm_tcp_create(&c, be, 0, 2, fds, 1000, &err) == AU_EINVAL && strstr(err.msg, "not usable"),
          "pipe: %s", err.msg);
    close(pipe_fds[1]);
    be_destroy(be);
}

int main(void) {
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED, "mmap: %s", strerror(errno));
    test_create_refusals();
    test_world_one();
    run_ranks(2, 0, rank_every_op_cpu, "every op, world 2, socketpairs");
    run_ranks(3, 1, rank_every_op_cpu, "every op, world 3, loopback TCP");
    run_ranks(2, 1, rank_every_op_staged, "every op, world 2, staged backend");
    run_ranks(3, 0, rank_every_op_staged, "every op, world 3, staged backend");
    test_peer_killed_mid_op();
    test_peer_stopped_mid_op();
    run_ranks(2, 0, rank_silent, "silent peer");
    run_ranks(2, 1, rank_abort, "abort from another thread");
    run_ranks(2, 0, rank_mismatched_ops, "mismatched ops");
    run_ranks(3, 0, rank_mismatched_shapes, "mismatched shapes");
    munmap(shared, sizeof *shared);
    return check_exit_code();
}
