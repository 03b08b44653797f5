// deps: au_cuda au_core
/* test_comm_nccl.c - the NCCL transport of comm.h (kernels/comm_nccl.cu).
 *
 * Every GPU part runs in a forked child (a CUDA context does not survive fork, so the parent
 * never makes one; it even counts the GPUs in a child) and reports through its exit status.
 *  - A build without NCCL: comm_nccl_available() is 0 and the id and create calls say
 *    "this build has no NCCL" (AU_EUNSUPPORTED); then "skipped: this build has no NCCL".
 *  - No GPU: "skipped: no GPU".
 *  - World 1 on GPU 0: every op exact (odd sizes from 0 elements to several MB, f32, bf16,
 *    f16, u8), f8 and u8 sums refused, shapes checked, a world-2 communicator that no other
 *    rank joins fails with AU_ECOMM after its timeout, comm_abort from another thread makes
 *    the next op fail fast.
 *  - World 2 (two GPUs, device = rank, the unique id handed from rank 0 to rank 1 through a
 *    pipe): every op exact, then rank 1 is killed while both run all_reduce_sum in a loop:
 *    rank 0 must get AU_ECOMM within the timeout and its stream must drain. With one GPU:
 *    "skipped: world 2 needs 2 GPUs" for that part.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "comm.h"
#include "kernels/comm_nccl.h"
#include "kernels/cuda_backend.h"

/* generous: under compute-sanitizer, joining a world of one once took over 20 s */
#define OP_TIMEOUT_MS 120000
#define JOIN_TIMEOUT_MS 1500
#define KILL_TIMEOUT_MS 5000

typedef struct shared_area {
    int n_gpus;
    atomic_int looping; /* world 2: both ranks are in the all_reduce loop */
    double kill_time_s; /* when the parent killed rank 1 (CLOCK_MONOTONIC) */
    double fail_time_s; /* when rank 0's op failed */
    char fail_msg[512];
} shared_area;

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

/* Run fn in a child; its exit status (0 = every check passed). */
static int in_child(void (*fn)(void *), void *arg) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        alarm(240);
        fn(arg);
        exit(check_exit_code());
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void count_gpus(void *arg) {
    (void)arg;
    shared->n_gpus = be_cuda_device_count();
}

static au_backend *open_gpu(int device) {
    au_err err = {0};
    au_backend *be = NULL;
    be_cuda_opts opts = {.device = device, .precision = BE_CUDA_BF16};
    REQUIRE(be_cuda_create(&be, &opts, &err) == 0, "be_cuda_create(device %d): %s", device, err.msg);
    return be;
}

/* A device tensor (freed by free_tensor). */
static au_tensor gpu_tensor(au_backend *be, au_dtype dt, int ndim, const int64_t *shape) {
    au_tensor t = au_tensor_make(dt, NULL, ndim, shape);
    size_t bytes = au_nbytes(&t);
    if (bytes) {
        t.data = be->ops->mem_alloc(be, bytes);
        REQUIRE(t.data, "device allocation of %zu bytes", bytes);
    }
    return t;
}

static void free_tensor(au_backend *be, au_tensor *t) {
    if (t->data)
        be->ops->mem_free(be, t->data);
}

static uint8_t pattern_byte(int from_rank, int block, size_t i) {
    uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)(from_rank * 40503 + block * 977 + 1);
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    return (uint8_t)(x ^ (x >> 15));
}

static void *host_bytes(size_t n) {
    void *p = malloc(n ? n : 1);
    REQUIRE(p, "out of memory (%zu bytes)", n);
    return p;
}

static void upload(au_backend *be, au_tensor *t, const void *host) {
    au_err err = {0};
    if (au_nbytes(t))
        REQUIRE(be_upload(be, t, host, &err) == 0, "upload: %s", err.msg);
}

static void download(au_backend *be, void *host, const au_tensor *t) {
    au_err err = {0};
    if (au_nbytes(t))
        REQUIRE(be_download(be, host, t, &err) == 0, "download: %s", err.msg);
}

/* ---- every op, exact ---- */

static void check_all_gather(au_comm *c, au_dtype dt, int ndim, const int64_t *shape) {
    au_err err = {0};
    au_backend *be = c->be;
    int64_t out_shape[3] = {shape[0] * c->world, ndim > 1 ? shape[1] : 0, ndim > 2 ? shape[2] : 0};
    au_tensor in = gpu_tensor(be, dt, ndim, shape), out = gpu_tensor(be, dt, ndim, out_shape);
    size_t block = au_nbytes(&in);
    uint8_t *host = host_bytes(block * (size_t)c->world);
    for (size_t i = 0; i < block; i++)
        host[i] = pattern_byte(c->rank, 0, i);
    upload(be, &in, host);
    int rc = comm_all_gather(c, &out, &in, &err);
    if (rc == 0)
        rc = comm_wait(c, &err);
    CHECK(rc == 0, "all_gather of %zu bytes %s: %s", block, au_dtype_name(dt), err.msg);
    memset(host, 0, block * (size_t)c->world);
    download(be, host, &out);
    for (int j = 0; rc == 0 && j < c->world; j++) {
        size_t bad = block;
        for (size_t i = 0; i < block && bad == block; i++)
            if (host[(size_t)j * block + i] != pattern_byte(j, 0, i))
                bad = i;
        CHECK(bad == block, "rank %d: all_gather %s of %zu bytes: block %d wrong at byte %zu", c->rank,
              au_dtype_name(dt), block, j, bad);
    }
    free(host);
    free_tensor(be, &in);
    free_tensor(be, &out);
}

static void check_all_to_all(au_comm *c, au_dtype dt, int64_t block_elems) {
    au_err err = {0};
    au_backend *be = c->be;
    int64_t shape[2] = {c->world, block_elems};
    au_tensor in = gpu_tensor(be, dt, 2, shape), out = gpu_tensor(be, dt, 2, shape);
    size_t total = au_nbytes(&in), block = total / (size_t)c->world;
    uint8_t *host = host_bytes(total);
    for (int j = 0; j < c->world; j++)
        for (size_t i = 0; i < block; i++)
            host[(size_t)j * block + i] = pattern_byte(c->rank, j, i);
    upload(be, &in, host);
    int rc = comm_all_to_all(c, &out, &in, &err);
    if (rc == 0)
        rc = comm_wait(c, &err);
    CHECK(rc == 0, "all_to_all of %zu-byte blocks: %s", block, err.msg);
    memset(host, 0, total);
    download(be, host, &out);
    for (int j = 0; rc == 0 && j < c->world; j++) {
        size_t bad = block;
        for (size_t i = 0; i < block && bad == block; i++)
            if (host[(size_t)j * block + i] != pattern_byte(j, c->rank, i))
                bad = i;
        CHECK(bad == block, "rank %d: all_to_all of %zu-byte blocks: block %d wrong at byte %zu", c->rank,
              block, j, bad);
    }
    free(host);
    free_tensor(be, &in);
    free_tensor(be, &out);
}

/* Small integers: every partial sum is exact in bf16 and f32, whatever order NCCL adds in. */
static float reduce_value(int rank, int64_t i) {
    return (float)((i * 7 + rank * 3) % 23 - 11);
}

static void check_all_reduce(au_comm *c, au_dtype dt, int64_t n) {
    au_err err = {0};
    au_backend *be = c->be;
    au_tensor buf = gpu_tensor(be, dt, 1, &n);
    float *values = host_bytes((size_t)n * sizeof(float));
    uint16_t *half = host_bytes((size_t)n * sizeof(uint16_t));
    for (int64_t i = 0; i < n; i++)
        values[i] = reduce_value(c->rank, i);
    if (dt == AU_BF16) {
        au_convert_from_f32(half, AU_BF16, values, n);
        upload(be, &buf, half);
    } else {
        upload(be, &buf, values);
    }
    int rc = comm_all_reduce_sum(c, &buf, &err);
    if (rc == 0)
        rc = comm_wait(c, &err);
    CHECK(rc == 0, "all_reduce_sum of %lld %s: %s", (long long)n, au_dtype_name(dt), err.msg);
    if (dt == AU_BF16) {
        download(be, half, &buf);
        au_convert_to_f32(values, half, AU_BF16, n);
    } else {
        download(be, values, &buf);
    }
    int64_t bad = -1;
    for (int64_t i = 0; rc == 0 && i < n && bad < 0; i++) {
        float want = 0;
        for (int r = 0; r < c->world; r++)
            want += reduce_value(r, i);
        if (values[i] != want)
            bad = i;
    }
    CHECK(bad < 0, "rank %d: all_reduce_sum of %lld %s wrong at %lld", c->rank, (long long)n,
          au_dtype_name(dt), (long long)bad);
    free(values);
    free(half);
    free_tensor(be, &buf);
}

static void check_refusals(au_comm *c) {
    au_err err = {0};
    au_backend *be = c->be;
    int64_t shape[2] = {c->world, 4}, wrong[2] = {c->world + 1, 4};
    au_tensor f8 = gpu_tensor(be, AU_F8_E4M3, 2, shape), u8 = gpu_tensor(be, AU_U8, 2, shape);
    au_tensor f32 = gpu_tensor(be, AU_F32, 2, shape), f32_wrong = gpu_tensor(be, AU_F32, 2, wrong);
    int64_t scale_n = c->world;
    au_tensor scales = gpu_tensor(be, AU_F32, 1, &scale_n);
    f8.scale = scales.data;
    CHECK(comm_all_gather(c, &f8, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_gather f8: %s",
          err.msg);
    CHECK(comm_all_to_all(c, &f8, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_to_all f8: %s",
          err.msg);
    CHECK(comm_all_reduce_sum(c, &f8, &err) == AU_EINVAL && strstr(err.msg, "f8"), "all_reduce f8: %s",
          err.msg);
    CHECK(comm_all_reduce_sum(c, &u8, &err) == AU_EUNSUPPORTED, "all_reduce u8: %s", err.msg);
    CHECK(comm_all_gather(c, &f32_wrong, &f32, &err) == AU_EINVAL, "all_gather shapes: %s", err.msg);
    CHECK(comm_all_to_all(c, &f32_wrong, &f32_wrong, &err) == AU_EINVAL, "all_to_all shapes: %s", err.msg);
    CHECK(comm_all_to_all(c, &u8, &f32, &err) == AU_EINVAL, "all_to_all dtypes: %s", err.msg);
    CHECK(comm_wait(c, &err) == 0, "wait after refusals: %s", err.msg);
    free_tensor(be, &f8);
    free_tensor(be, &u8);
    free_tensor(be, &f32);
    free_tensor(be, &f32_wrong);
    free_tensor(be, &scales);
}

static void exercise_every_op(au_comm *c) {
    static const int64_t gather_shapes[][3] = {{0, 3, 0}, {1, 1, 0}, {3, 7, 5}, {5, 9, 0}, {2, 1000, 0}};
    static const int gather_ndims[] = {2, 2, 3, 2, 2};
    static const au_dtype gather_dtypes[] = {AU_U8, AU_U8, AU_U8, AU_BF16, AU_F32};
    for (int i = 0; i < 5; i++)
        check_all_gather(c, gather_dtypes[i], gather_ndims[i], gather_shapes[i]);
    int64_t big = 3 * 1024 * 1024 + 7;
    check_all_gather(c, AU_U8, 1, &big);
    check_refusals(c);
    check_all_to_all(c, AU_U8, 0);
    check_all_to_all(c, AU_U8, 1);
    check_all_to_all(c, AU_F16, 13);
    check_all_to_all(c, AU_F32, 1500001);
    static const int64_t reduce_sizes[] = {0, 1, 5, 1000, 1000003};
    for (int i = 0; i < 5; i++) {
        check_all_reduce(c, AU_F32, reduce_sizes[i]);
        check_all_reduce(c, AU_BF16, reduce_sizes[i]);
    }
}

/* ---- world 1 ---- */

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

static void world_one(void *arg) {
    (void)arg;
    au_err err = {0};
    au_backend *be = open_gpu(0);
    uint8_t id[COMM_NCCL_ID_BYTES];
    REQUIRE(comm_nccl_unique_id(id, &err) == 0, "unique id: %s", err.msg);
    au_comm *c = NULL;
    REQUIRE(comm_nccl_create(&c, be, 0, 1, id, OP_TIMEOUT_MS, &err) == 0, "create world 1: %s", err.msg);
    CHECK(strcmp(c->ops->name, "nccl") == 0 && c->rank == 0 && c->world == 1, "comm fields");
    exercise_every_op(c);

    /* abort from another thread, then every op and wait fail fast */
    abort_job job = {c, 100};
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, abort_later, &job) == 0, "pthread_create");
    pthread_join(thread, NULL);
    int64_t n = 16;
    au_tensor buf = gpu_tensor(be, AU_F32, 1, &n);
    double t0 = now_seconds();
    CHECK(comm_all_reduce_sum(c, &buf, &err) == AU_ECOMM && strstr(err.msg, "aborted"), "op after abort: %s",
          err.msg);
    CHECK(comm_wait(c, &err) == AU_ECOMM && strstr(err.msg, "aborted"), "wait after abort: %s", err.msg);
    CHECK(now_seconds() - t0 < 1.0, "ops after an abort took %.2f s", now_seconds() - t0);
    comm_abort(c); /* again: harmless */
    free_tensor(be, &buf);
    comm_destroy(c);

    /* a communicator of two that nobody else joins */
    REQUIRE(comm_nccl_unique_id(id, &err) == 0, "unique id: %s", err.msg);
    t0 = now_seconds();
    int rc = comm_nccl_create(&c, be, 0, 2, id, JOIN_TIMEOUT_MS, &err);
    double s = now_seconds() - t0;
    CHECK(rc == AU_ECOMM && c == NULL && strstr(err.msg, "joining"), "join alone: %d %s", rc, err.msg);
    CHECK(s >= JOIN_TIMEOUT_MS * 1e-3 * 0.95 && s < 30, "join alone gave up after %.2f s (timeout %d ms)", s,
          JOIN_TIMEOUT_MS);
    printf("world 1: join alone failed after %.2f s: %s\n", s, err.msg);

    CHECK(comm_nccl_create(&c, be, 0, 1, id, 0, &err) == AU_EINVAL, "timeout 0: %s", err.msg);
    CHECK(comm_nccl_create(&c, be, 1, 1, id, 1000, &err) == AU_EINVAL, "rank 1 of 1: %s", err.msg);
    CHECK(be_sync(be, &err) == 0, "the stream is healthy after all this: %s", err.msg);
    be_destroy(be);
}

/* ---- world 2 ---- */

typedef struct rank_args {
    int rank;
    int id_pipe[2];
} rank_args;

static void world_two_rank(void *arg) {
    rank_args *a = arg;
    au_err err = {0};
    au_backend *be = open_gpu(a->rank);
    uint8_t id[COMM_NCCL_ID_BYTES];
    if (a->rank == 0) {
        REQUIRE(comm_nccl_unique_id(id, &err) == 0, "unique id: %s", err.msg);
        REQUIRE(write(a->id_pipe[1], id, sizeof id) == (ssize_t)sizeof id, "id to rank 1: %s",
                strerror(errno));
    } else {
        size_t got = 0;
        while (got < sizeof id) {
            ssize_t n = read(a->id_pipe[0], id + got, sizeof id - got);
            REQUIRE(n > 0, "id from rank 0: %s", n == 0 ? "EOF" : strerror(errno));
            got += (size_t)n;
        }
    }
    au_comm *c = NULL;
    REQUIRE(comm_nccl_create(&c, be, a->rank, 2, id, KILL_TIMEOUT_MS, &err) == 0, "rank %d: create: %s",
            a->rank, err.msg);
    exercise_every_op(c);

    /* both loop on all_reduce_sum until rank 1 is killed */
    int64_t n = 4 << 20;
    au_tensor buf = gpu_tensor(be, AU_F32, 1, &n);
    REQUIRE(be_fill(be, &buf, 1.0f, &err) == 0, "fill: %s", err.msg);
    int rc = 0;
    double start = now_seconds();
    for (int i = 0; rc == 0 && now_seconds() - start < 60; i++) {
        rc = comm_all_reduce_sum(c, &buf, &err);
        if (rc == 0)
            rc = comm_wait(c, &err);
        if (i == 10 && a->rank == 1)
            atomic_store(&shared->looping, 1);
    }
    if (a->rank == 0) {
        shared->fail_time_s = now_seconds();
        snprintf(shared->fail_msg, sizeof shared->fail_msg, "%s", err.msg);
        CHECK(rc == AU_ECOMM, "rank 0 after rank 1 was killed: %d %s", rc, err.msg);
        CHECK(shared->kill_time_s > 0 &&
                  shared->fail_time_s - shared->kill_time_s < KILL_TIMEOUT_MS * 1e-3 + 5,
              "rank 0 failed %.2f s after the kill (timeout %d ms)",
              shared->fail_time_s - shared->kill_time_s, KILL_TIMEOUT_MS);
        CHECK(be_sync(be, &err) == 0 || err.code == AU_EBACKEND, "the stream drained after the abort: %s",
              err.msg);
    }
    free_tensor(be, &buf);
    comm_destroy(c);
    be_destroy(be);
}

static void test_world_two(void) {
    rank_args args[2];
    int id_pipe[2];
    REQUIRE(pipe(id_pipe) == 0, "pipe: %s", strerror(errno));
    pid_t pids[2];
    atomic_store(&shared->looping, 0);
    shared->kill_time_s = 0;
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < 2; r++) {
        args[r] = (rank_args){r, {id_pipe[0], id_pipe[1]}};
        pids[r] = fork();
        REQUIRE(pids[r] >= 0, "fork: %s", strerror(errno));
        if (pids[r] == 0) {
            alarm(240);
            world_two_rank(&args[r]);
            exit(check_exit_code());
        }
    }
    close(id_pipe[0]);
    close(id_pipe[1]);
    for (int i = 0; i < 120000 && !atomic_load(&shared->looping); i++)
        sleep_ms(1);
    CHECK(atomic_load(&shared->looping), "rank 1 never reached the all_reduce loop");
    sleep_ms(300);
    shared->kill_time_s = now_seconds();
    REQUIRE(kill(pids[1], SIGKILL) == 0, "SIGKILL rank 1: %s", strerror(errno));
    int status = 0;
    REQUIRE(waitpid(pids[0], &status, 0) == pids[0], "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "world 2: rank 0 ended with status 0x%x", status);
    REQUIRE(waitpid(pids[1], &status, 0) == pids[1], "waitpid");
    printf("world 2: rank 0 failed %.2f s after rank 1 was killed: %s\n",
           shared->fail_time_s - shared->kill_time_s, shared->fail_msg);
}

/* ---- a build without NCCL ---- */

static void check_no_nccl(void) {
    au_err err = {0};
    uint8_t id[COMM_NCCL_ID_BYTES] = {0};
    au_comm *c = (au_comm *)1;
    char version[32] = "x";
    comm_nccl_version(version, sizeof version);
    CHECK(version[0] == '\0', "no version without NCCL: %s", version);
    CHECK(comm_nccl_unique_id(id, &err) == AU_EUNSUPPORTED && strstr(err.msg, "this build has no NCCL"),
          "unique id: %s", err.msg);
    CHECK(comm_nccl_create(&c, NULL, 0, 1, id, 1000, &err) == AU_EUNSUPPORTED && c == NULL &&
              strstr(err.msg, "this build has no NCCL"),
          "create: %s", err.msg);
}

int main(void) {
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(shared != MAP_FAILED, "mmap: %s", strerror(errno));
    if (!comm_nccl_available()) {
        check_no_nccl();
        if (failures)
            return check_exit_code();
        printf("skipped: this build has no NCCL\n");
        return 77;
    }
    char version[32];
    comm_nccl_version(version, sizeof version);
    CHECK(version[0] >= '2' && strchr(version, '.'), "NCCL version \"%s\"", version);
    printf("NCCL %s\n", version);
    shared->n_gpus = -1;
    REQUIRE(in_child(count_gpus, NULL) == 0, "counting GPUs failed");
    if (shared->n_gpus <= 0) {
        printf("skipped: no GPU\n");
        return failures ? check_exit_code() : 77;
    }
    CHECK(in_child(world_one, NULL) == 0, "world 1 on one GPU failed");
    if (shared->n_gpus < 2)
        printf("skipped: world 2 needs 2 GPUs\n");
    else
        test_world_two();
    munmap(shared, sizeof *shared);
    return check_exit_code();
}
