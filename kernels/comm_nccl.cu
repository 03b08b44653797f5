/* comm_nccl.cu - the "nccl" transport of engine/comm.h (kernels/comm_nccl.h).
 *
 * One NCCL communicator per comm, created with config.blocking = 0: no NCCL call ever
 * blocks, a call may answer ncclInProgress and is then finished by polling
 * ncclCommGetAsyncError. Joining, every op and comm_wait poll like that with the comm's
 * timeout; on an error or the timeout the communicator is aborted (ncclCommAbort), which
 * also makes NCCL kernels still waiting for a dead peer exit, so the stream drains.
 *   all_gather      ncclAllGather;
 *   all_to_all      block j of in to rank j with ncclSend, block j of out from rank j with
 *                   ncclRecv, all in one group (this rank's own block: a device copy);
 *   all_reduce_sum  ncclAllReduce (ncclSum) in place, f32 or bf16.
 * Ops are enqueued on the CUDA backend's stream, after the kernels producing their inputs;
 * comm_wait polls cudaStreamQuery on that stream and gives up timeout_ms after it began
 * (NCCL shows no progress to measure, so the timeout must cover the longest wait). Tensors with no elements
 * enqueue nothing (every rank has the same shapes, so every rank skips the same ops).
 *
 * Threads: comm_abort may run on any thread while the job's thread is inside an op, a wait
 * or a CUDA call stuck behind a hung collective. A mutex covers every NCCL call (each is
 * short: nothing here sleeps holding it); abort sets an atomic flag, then under the mutex
 * aborts the communicator once and forgets it. The loops see the flag and return AU_ECOMM.
 * comm_destroy must not race comm_abort (the cluster orders them).
 *
 * Without AU_HAVE_NCCL (cmake found no NCCL, or AUTEUR_NCCL=OFF) the file still builds:
 * comm_nccl_available() is 0 and creating a comm is AU_EUNSUPPORTED.
 */
#include "comm_nccl.h"
#include "cuda_internal.cuh"

#include <stdio.h>
#include <string.h>

#ifdef AU_HAVE_NCCL

#include <nccl.h>
#include <time.h>

#include <atomic>
#include <mutex>
#include <new>

static_assert(sizeof(ncclUniqueId) == COMM_NCCL_ID_BYTES, "comm_nccl.h's id size is NCCL's");

typedef struct nccl_comm {
    au_comm base;
    std::mutex lock;          /* around every NCCL call and `nccl` */
    ncclComm_t nccl;          /* NULL once aborted */
    std::atomic<int> aborted; /* comm_abort was called */
    int failed;               /* an op failed: the communicator was aborted by this thread */
    char failure[400];        /* why, for the ops after */
    cudaStream_t stream;      /* the CUDA backend's */
    int device;
} nccl_comm;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleep between polls: 10 us growing to 1 ms, so short waits stay short. */
static void poll_pause(int *pause_us) {
    struct timespec ts = {0, (long)*pause_us * 1000L};
    nanosleep(&ts, NULL);
    if (*pause_us < 1000)
        *pause_us *= 2;
}

/* Abort the communicator once (caller holds the lock). */
static void abort_locked(nccl_comm *nc) {
    if (nc->nccl) {
        ncclCommAbort(nc->nccl);
        nc->nccl = NULL;
    }
}

/* The comm cannot be used any more: record why (first failure only), abort, fill err. */
static int comm_fail(nccl_comm *nc, const char *op, const char *detail, au_err *err) {
    {
        std::lock_guard<std::mutex> guard(nc->lock);
        abort_locked(nc);
    }
    if (nc->aborted.load())
        return au_errf(err, AU_ECOMM, "comm nccl (rank %d of %d): %s: aborted", nc->base.rank, nc->base.world,
                       op);
    if (!nc->failed) {
        nc->failed = 1;
        snprintf(nc->failure, sizeof nc->failure, "%s: %s", op, detail);
    }
    return au_errf(err, AU_ECOMM, "comm nccl (rank %d of %d): %s: %s", nc->base.rank, nc->base.world, op,
                   detail);
}

/* An NCCL call's failure, with NCCL's words for it (read before the abort clears them). */
static int nccl_fail(nccl_comm *nc, const char *op, const char *what, const char *file, int line,
                     ncclResult_t r, au_err *err) {
    char detail[400];
    {
        std::lock_guard<std::mutex> guard(nc->lock); /* the text lives in the communicator */
        const char *last = nc->nccl ? ncclGetLastError(nc->nccl) : NULL;
        snprintf(detail, sizeof detail, "%s failed (%s:%d): %s%s%s", what, file, line, ncclGetErrorString(r),
                 last && *last ? ": " : "", last ? last : "");
    }
    return comm_fail(nc, op, detail, err);
}

/* Checked NCCL call on the comm, under the lock; ncclInProgress is not a failure (the
 * poll that follows finishes it). Needs `nc`, `op` and `err` in scope. */
#define NCCL_TRY(call)                                                                                       \
    do {                                                                                                     \
        ncclResult_t nccl_r_;                                                                                \
        {                                                                                                    \
            std::lock_guard<std::mutex> guard_(nc->lock);                                                    \
            nccl_r_ = nc->nccl ? (call) : ncclInvalidUsage;                                                  \
        }                                                                                                    \
        if (nccl_r_ != ncclSuccess && nccl_r_ != ncclInProgress)                                             \
            return nccl_fail(nc, op, #call, __FILE__, __LINE__, nccl_r_, err);                               \
    } while (0)

/* AU_ECOMM when the comm was aborted or failed before. */
static int check_usable(nccl_comm *nc, const char *op, au_err *err) {
    if (nc->aborted.load())
        return au_errf(err, AU_ECOMM, "comm nccl (rank %d of %d): %s: the comm was aborted", nc->base.rank,
                       nc->base.world, op);
    if (nc->failed)
        return au_errf(err, AU_ECOMM, "comm nccl (rank %d of %d): %s: the comm failed earlier (%s)",
                       nc->base.rank, nc->base.world, op, nc->failure);
    return 0;
}

/* Poll until NCCL has finished the call in progress (and, when stream_too, the stream is
 * idle), an error shows, comm_abort is called or timeout_ms passes (then the comm is
 * aborted). `what` says what was waited for, in the error. */
static int poll_done(nccl_comm *nc, const char *op, const char *what, int stream_too, au_err *err) {
    double deadline_s = now_seconds() + nc->base.timeout_ms * 1e-3;
    int pause_us = 10;
    for (;;) {
        if (nc->aborted.load())
            return comm_fail(nc, op, "aborted", err);
        ncclResult_t state;
        {
            std::lock_guard<std::mutex> guard(nc->lock);
            if (!nc->nccl)
                state = ncclInvalidUsage;
            else if (ncclCommGetAsyncError(nc->nccl, &state) != ncclSuccess)
                state = ncclInternalError;
        }
        if (state != ncclSuccess && state != ncclInProgress)
            return nccl_fail(nc, op, what, __FILE__, __LINE__, state, err);
        if (state == ncclSuccess) {
            if (!stream_too)
                return 0;
            cudaError_t e = cudaStreamQuery(nc->stream);
            if (e == cudaSuccess)
                return 0;
            if (e != cudaErrorNotReady) {
                char detail[300];
                snprintf(detail, sizeof detail, "the stream failed while %s: %s", what,
                         cudaGetErrorString(e));
                return comm_fail(nc, op, detail, err);
            }
        }
        if (now_seconds() >= deadline_s) {
            char detail[300];
            snprintf(detail, sizeof detail, "not done after %d ms %s: a peer is dead, hung or unreachable",
                     nc->base.timeout_ms, what);
            return comm_fail(nc, op, detail, err);
        }
        poll_pause(&pause_us);
    }
}

static int nccl_dtype_of(const au_tensor *t, ncclDataType_t *out, const char *op, const char *name,
                         au_err *err) {
    switch (t->dtype) {
    case AU_F32: *out = ncclFloat32; return 0;
    case AU_BF16: *out = ncclBfloat16; return 0;
    case AU_F16: *out = ncclFloat16; return 0;
    case AU_U8: *out = ncclUint8; return 0;
    case AU_I32: *out = ncclInt32; return 0;
    case AU_I64: *out = ncclInt64; return 0;
    case AU_F8_E4M3:
        return au_errf(err, AU_EINVAL, "comm nccl: %s: %s is f8_e4m3 (its per-row scales would not follow)",
                       op, name);
    default:
        return au_errf(err, AU_EINVAL, "comm nccl: %s: %s has an unknown dtype %d", op, name, (int)t->dtype);
    }
}

/* The backend's device must be current on the calling thread (NCCL enqueues on it). */
static int make_current(nccl_comm *nc, const char *op, au_err *err) {
    CUDA_TRY(cudaSetDevice(nc->device));
    return 0;
}

static int nccl_all_gather(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err) {
    nccl_comm *nc = (nccl_comm *)c->impl;
    const char *op = "all_gather";
    ncclDataType_t dt;
    int rc;
    if ((rc = be_check_tensor("comm all_gather", "in", in, err)) ||
        (rc = be_check_tensor("comm all_gather", "out", out, err)) ||
        (rc = nccl_dtype_of(in, &dt, op, "in", err)))
        return rc;
    int shape_ok =
        out->dtype == in->dtype && out->ndim == in->ndim && out->shape[0] == (int64_t)c->world * in->shape[0];
    for (int d = 1; shape_ok && d < in->ndim; d++)
        shape_ok = out->shape[d] == in->shape[d];
    char in_shape[96], out_shape[96];
    if (!shape_ok)
        return au_errf(err, AU_EINVAL, "comm nccl: all_gather: out %s must be in %s with dim 0 times %d",
                       au_shape_str(out, out_shape, sizeof out_shape),
                       au_shape_str(in, in_shape, sizeof in_shape), c->world);
    if ((rc = check_usable(nc, op, err)) || (rc = make_current(nc, op, err)))
        return rc;
    size_t count = (size_t)au_numel(in);
    if (count == 0)
        return 0;
    NCCL_TRY(ncclAllGather(in->data, out->data, count, dt, nc->nccl, nc->stream));
    return poll_done(nc, op, "enqueueing ncclAllGather", 0, err);
}

static int nccl_all_to_all(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err) {
    nccl_comm *nc = (nccl_comm *)c->impl;
    const char *op = "all_to_all";
    ncclDataType_t dt;
    int rc;
    if ((rc = be_check_tensor("comm all_to_all", "in", in, err)) ||
        (rc = be_check_tensor("comm all_to_all", "out", out, err)) ||
        (rc = nccl_dtype_of(in, &dt, op, "in", err)))
        return rc;
    char in_shape[96], out_shape[96];
    if (out->dtype != in->dtype || !au_same_shape(out, in) || in->shape[0] != c->world)
        return au_errf(err, AU_EINVAL,
                       "comm nccl: all_to_all: in %s and out %s must both be [%d, ...] of one dtype",
                       au_shape_str(in, in_shape, sizeof in_shape),
                       au_shape_str(out, out_shape, sizeof out_shape), c->world);
    if ((rc = check_usable(nc, op, err)) || (rc = make_current(nc, op, err)))
        return rc;
    size_t block_count = (size_t)(au_numel(in) / c->world), block_bytes = au_nbytes(in) / (size_t)c->world;
    if (block_count == 0)
        return 0;
    const char *in_bytes = (const char *)in->data;
    char *out_bytes = (char *)out->data;
    CUDA_TRY(cudaMemcpyAsync(out_bytes + block_bytes * c->rank, in_bytes + block_bytes * c->rank, block_bytes,
                             cudaMemcpyDeviceToDevice, nc->stream));
    if (c->world == 1)
        return 0;
    /* One group: every send and receive of this rank, enqueued together (no order between
     * peers to deadlock on). Once opened, the group is closed even when a call in it fails. */
    ncclResult_t failure = ncclSuccess;
    const char *failed_call = "";
    {
        std::lock_guard<std::mutex> guard(nc->lock);
        if (!nc->nccl) {
            failure = ncclInvalidUsage;
            failed_call = "using the communicator";
        } else if ((failure = ncclGroupStart()) != ncclSuccess) {
            failed_call = "ncclGroupStart()";
        } else {
            for (int j = 0; j < c->world && failure == ncclSuccess; j++) {
                if (j == c->rank)
                    continue;
                failure = ncclSend(in_bytes + block_bytes * j, block_count, dt, j, nc->nccl, nc->stream);
                if (failure == ncclSuccess || failure == ncclInProgress)
                    failure = ncclRecv(out_bytes + block_bytes * j, block_count, dt, j, nc->nccl, nc->stream);
                if (failure == ncclInProgress) /* finished by the poll after the group */
                    failure = ncclSuccess;
                if (failure != ncclSuccess)
                    failed_call = "ncclSend/ncclRecv";
            }
            ncclResult_t end = ncclGroupEnd();
            if (failure == ncclSuccess && end != ncclSuccess && end != ncclInProgress) {
                failure = end;
                failed_call = "ncclGroupEnd()";
            }
        }
    }
    if (failure != ncclSuccess)
        return nccl_fail(nc, op, failed_call, __FILE__, __LINE__, failure, err);
    return poll_done(nc, op, "enqueueing the ncclSend/ncclRecv group", 0, err);
}

static int nccl_all_reduce_sum(au_comm *c, au_tensor *buf, au_err *err) {
    nccl_comm *nc = (nccl_comm *)c->impl;
    const char *op = "all_reduce_sum";
    ncclDataType_t dt;
    int rc;
    if ((rc = be_check_tensor("comm all_reduce_sum", "buf", buf, err)) ||
        (rc = nccl_dtype_of(buf, &dt, op, "buf", err)))
        return rc;
    if (buf->dtype != AU_F32 && buf->dtype != AU_BF16)
        return au_errf(err, AU_EUNSUPPORTED, "comm nccl: all_reduce_sum: buf is %s, sums are f32 or bf16",
                       au_dtype_name(buf->dtype));
    if ((rc = check_usable(nc, op, err)) || (rc = make_current(nc, op, err)))
        return rc;
    size_t count = (size_t)au_numel(buf);
    if (count == 0)
        return 0;
    NCCL_TRY(ncclAllReduce(buf->data, buf->data, count, dt, ncclSum, nc->nccl, nc->stream));
    return poll_done(nc, op, "enqueueing ncclAllReduce", 0, err);
}

static int nccl_wait(au_comm *c, au_err *err) {
    nccl_comm *nc = (nccl_comm *)c->impl;
    const char *op = "wait";
    int rc;
    if ((rc = check_usable(nc, op, err)))
        return rc;
    return poll_done(nc, op, "waiting for the collectives on the stream", 1, err);
}

static void nccl_abort(au_comm *c) {
    nccl_comm *nc = (nccl_comm *)c->impl;
    nc->aborted.store(1);
    std::lock_guard<std::mutex> guard(nc->lock);
    abort_locked(nc);
}

/* A communicator still alive is finalized (bounded by the timeout, aborted past it) and
 * destroyed; an aborted one was already freed by ncclCommAbort. */
static void nccl_destroy(au_comm *c) {
    if (!c)
        return;
    nccl_comm *nc = (nccl_comm *)c->impl;
    au_err err = {};
    int finalized = 0;
    {
        std::lock_guard<std::mutex> guard(nc->lock);
        if (nc->nccl && cudaSetDevice(nc->device) == cudaSuccess) {
            ncclResult_t r = ncclCommFinalize(nc->nccl);
            finalized = r == ncclSuccess || r == ncclInProgress;
        }
    }
    if (finalized && poll_done(nc, "destroy", "finalizing the communicator", 0, &err) == 0) {
        std::lock_guard<std::mutex> guard(nc->lock);
        if (ncclCommDestroy(nc->nccl) != ncclSuccess)
            ncclCommAbort(nc->nccl);
        nc->nccl = NULL;
    }
    {
        std::lock_guard<std::mutex> guard(nc->lock);
        abort_locked(nc);
    }
    delete nc;
}

static const au_comm_ops nccl_ops = {
    "nccl", nccl_all_gather, nccl_all_to_all, nccl_all_reduce_sum, nccl_wait, nccl_abort, nccl_destroy,
};

int comm_nccl_available(void) {
    int version = 0;
    return ncclGetVersion(&version) == ncclSuccess && version > 0;
}

void comm_nccl_version(char *buf, int cap) {
    int v = 0;
    if (cap <= 0)
        return;
    if (ncclGetVersion(&v) != ncclSuccess || v <= 0) {
        buf[0] = '\0';
        return;
    }
    /* NCCL_VERSION(X,Y,Z) is X*10000 + Y*100 + Z since 2.9, X*1000 + Y*100 + Z before */
    if (v >= 20900)
        snprintf(buf, (size_t)cap, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    else
        snprintf(buf, (size_t)cap, "%d.%d.%d", v / 1000, v / 100 % 10, v % 100);
}

int comm_nccl_unique_id(uint8_t id[COMM_NCCL_ID_BYTES], au_err *err) {
    ncclUniqueId uid;
    ncclResult_t r = ncclGetUniqueId(&uid);
    if (r != ncclSuccess)
        return au_errf(err, AU_EBACKEND, "comm nccl: ncclGetUniqueId failed: %s: %s", ncclGetErrorString(r),
                       ncclGetLastError(NULL));
    memcpy(id, uid.internal, COMM_NCCL_ID_BYTES);
    return 0;
}

int comm_nccl_create(au_comm **out, au_backend *be, int rank, int world, const uint8_t id[COMM_NCCL_ID_BYTES],
                     int timeout_ms, au_err *err) {
    const char *op = "create";
    *out = NULL;
    if (!be || strcmp(be->ops->name, "cuda") != 0)
        return au_errf(err, AU_EINVAL, "comm nccl: needs the CUDA backend, not %s",
                       be ? be->ops->name : "none");
    if (world < 1 || rank < 0 || rank >= world)
        return au_errf(err, AU_EINVAL, "comm nccl: rank %d of world %d", rank, world);
    if (timeout_ms <= 0)
        return au_errf(err, AU_EINVAL, "comm nccl: timeout_ms must be > 0, got %d", timeout_ms);
    cuda_state *cs = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cs->device));
    nccl_comm *nc = new (std::nothrow) nccl_comm();
    if (!nc)
        return au_errf(err, AU_ENOMEM, "comm nccl: out of memory");
    nc->base.ops = &nccl_ops;
    nc->base.rank = rank;
    nc->base.world = world;
    nc->base.be = be;
    nc->base.timeout_ms = timeout_ms;
    nc->base.impl = nc;
    nc->nccl = NULL;
    nc->aborted.store(0);
    nc->failed = 0;
    nc->failure[0] = '\0';
    nc->stream = cs->stream;
    nc->device = cs->device;
    ncclUniqueId uid;
    memcpy(uid.internal, id, COMM_NCCL_ID_BYTES);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r;
    {
        std::lock_guard<std::mutex> guard(nc->lock);
        r = ncclCommInitRankConfig(&nc->nccl, world, uid, rank, &config);
    }
    int rc = 0;
    if (r != ncclSuccess && r != ncclInProgress)
        rc = nccl_fail(nc, op, "ncclCommInitRankConfig", __FILE__, __LINE__, r, err);
    else
        rc = poll_done(nc, op, "joining (every rank must call comm_nccl_create with the same id)", 0, err);
    if (rc) {
        nccl_destroy(&nc->base);
        return rc;
    }
    *out = &nc->base;
    return 0;
}

#else /* no NCCL in this build */

int comm_nccl_available(void) {
    return 0;
}

void comm_nccl_version(char *buf, int cap) {
    if (cap > 0)
        buf[0] = '\0';
}

int comm_nccl_unique_id(uint8_t id[COMM_NCCL_ID_BYTES], au_err *err) {
    (void)id;
    return au_errf(err, AU_EUNSUPPORTED, "comm nccl: this build has no NCCL");
}

int comm_nccl_create(au_comm **out, au_backend *be, int rank, int world, const uint8_t id[COMM_NCCL_ID_BYTES],
                     int timeout_ms, au_err *err) {
    (void)be, (void)rank, (void)world, (void)id, (void)timeout_ms;
    *out = NULL;
    return au_errf(err, AU_EUNSUPPORTED, "comm nccl: this build has no NCCL");
}

#endif
