/* cluster_comm.c - transports, joining and the all-reduce benchmark of a rank (cluster_comm.h).
 *
 * NCCL exists only in builds with it (AU_HAVE_NCCL, kernels/comm_nccl.h) and only for the
 * CUDA backend; elsewhere asking for it is AU_EUNSUPPORTED with the reason.
 */
#include "cluster_comm.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifdef AU_HAVE_NCCL
#include "kernels/comm_nccl.h"
#endif

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cluster_comm_can_nccl(au_pipeline *pipe) {
#ifdef AU_HAVE_NCCL
    return strcmp(pipeline_backend_name(pipe), "cuda") == 0 && comm_nccl_available();
#else
    (void)pipe;
    return 0;
#endif
}

const char *cluster_comm_transports(au_pipeline *pipe) {
    return cluster_comm_can_nccl(pipe) ? "tcp,nccl" : "tcp";
}

int cluster_comm_choose(au_pipeline *pipe, const char *want, const char **transport, au_err *err) {
    if (strcmp(want, "tcp") == 0 || (strcmp(want, "auto") == 0 && !cluster_comm_can_nccl(pipe))) {
        *transport = "tcp";
        return 0;
    }
    if (strcmp(want, "auto") != 0 && strcmp(want, "nccl") != 0)
        return au_errf(err, AU_EINVAL, "comm: expected auto, nccl or tcp, got \"%s\"", want);
    if (!cluster_comm_can_nccl(pipe))
        return au_errf(err, AU_EUNSUPPORTED, "comm nccl: %s",
                       strcmp(pipeline_backend_name(pipe), "cuda") != 0
                           ? "the engine runs on the CPU backend (NCCL moves GPU memory only)"
                           : "this build has no NCCL, or libnccl does not load");
    *transport = "nccl";
    return 0;
}

#ifdef AU_HAVE_NCCL
static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
#endif

int cluster_comm_nccl_id(char hex[CLUSTER_NCCL_ID_HEX], au_err *err) {
#ifdef AU_HAVE_NCCL
    uint8_t id[COMM_NCCL_ID_BYTES];
    int rc = comm_nccl_unique_id(id, err);
    if (rc)
        return rc;
    for (int i = 0; i < COMM_NCCL_ID_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    return 0;
#else
    hex[0] = '\0';
    return au_errf(err, AU_EUNSUPPORTED, "comm nccl: this build has no NCCL");
#endif
}

int cluster_comm_nccl_join(au_comm **out, au_pipeline *pipe, int rank, int world, const char *id_hex,
                           au_err *err) {
#ifdef AU_HAVE_NCCL
    uint8_t id[COMM_NCCL_ID_BYTES];
    if (!id_hex || strlen(id_hex) != 2 * COMM_NCCL_ID_BYTES)
        return au_errf(err, AU_EFORMAT, "comm nccl: the unique id must be %d hex digits",
                       2 * COMM_NCCL_ID_BYTES);
    for (int i = 0; i < COMM_NCCL_ID_BYTES; i++) {
        int hi = hex_value(id_hex[2 * i]), lo = hex_value(id_hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return au_errf(err, AU_EFORMAT, "comm nccl: the unique id is not hex");
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return comm_nccl_create(out, pipeline_backend(pipe), rank, world, id, CLUSTER_COMM_TIMEOUT_MS, err);
#else
    (void)out, (void)pipe, (void)rank, (void)world, (void)id_hex;
    return au_errf(err, AU_EUNSUPPORTED, "comm nccl: this build has no NCCL");
#endif
}

int cluster_comm_tcp_join(au_comm **out, au_pipeline *pipe, int rank, int fd, au_err *err) {
    int fds[2] = {-1, -1};
    fds[1 - rank] = fd;
    return comm_tcp_create(out, pipeline_backend(pipe), rank, 2, fds, CLUSTER_COMM_TIMEOUT_MS, err);
}

int cluster_comm_bench_run(au_comm *comm, size_t bytes, int iters, double *seconds, au_err *err) {
    int64_t n = (int64_t)(bytes / sizeof(float));
    if (n < 1 || iters < 1)
        return au_errf(err, AU_EINVAL, "comm bench: %zu bytes, %d iterations", bytes, iters);
    au_arena *arena = be_arena_create(comm->be, (size_t)n * sizeof(float) + 4096);
    if (!arena)
        return au_errf(err, AU_ENOMEM, "comm bench: no memory for %zu bytes", bytes);
    au_tensor buf;
    int rc = be_arena_tensor(arena, AU_F32, 1, &n, &buf, err);
    if (rc == 0)
        rc = be_fill(comm->be, &buf, 1.0f, err);
    /* warm-up: connections and buffers set up outside the timing */
    if (rc == 0 && (rc = comm_all_reduce_sum(comm, &buf, err)) == 0)
        rc = comm_wait(comm, err);
    double t0 = now_mono();
    for (int i = 0; rc == 0 && i < iters; i++)
        rc = comm_all_reduce_sum(comm, &buf, err);
    if (rc == 0)
        rc = comm_wait(comm, err);
    *seconds = now_mono() - t0;
    be_arena_destroy(arena);
    return rc ? au_err_prefix(err, "comm bench") : 0;
}
