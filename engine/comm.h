/* comm.h - collectives between the ranks of one engine.
 *
 * The ranks of a job (rank 0 = the server, rank 1.. = workers) run the same model code
 * and exchange tensors only through an au_comm. Two transports implement it:
 *   - "nccl" (kernels/comm_nccl.cu): device memory of the CUDA backend, one NCCL
 *     communicator created non-blocking, ops enqueued on the backend's stream;
 *   - "tcp"  (engine/comm_tcp.c): any backend, one connected socket per peer; data on
 *     another backend than the CPU one is staged through host memory (be_download /
 *     be_upload). It lets the parallel modes run, and be tested, without GPUs.
 * Which one a cluster uses is chosen by server/cluster.c when the ranks join.
 *
 * Rules
 *  - Every rank calls the same ops in the same order with the same shapes and dtypes.
 *  - Tensors are contiguous backend memory of the comm's backend; in and out never overlap.
 *  - Ops may be asynchronous (NCCL): comm_wait() returns once all enqueued work is done,
 *    or AU_ECOMM when a peer failed or timeout_ms passed without progress. A rank that
 *    dies, hangs or loses its link therefore makes every other rank's next op or wait
 *    fail with AU_ECOMM within the timeout, never block forever.
 *  - comm_abort() may be called from any thread (the cluster's heartbeat watcher): the op
 *    in progress and every later op fail fast with AU_ECOMM. An aborted comm is only
 *    destroyed; the cluster makes a new one when the ranks join again.
 *  - A tensor of AU_F8_E4M3 is refused (its per-row scales would not follow).
 */
#ifndef AU_COMM_H
#define AU_COMM_H

#include <stdint.h>

#include "backend.h"
#include "status.h"

typedef struct au_comm au_comm;

typedef struct au_comm_ops {
    const char *name; /* "tcp", "nccl" */
    /* out = the `in` of every rank, concatenated in rank order along dim 0:
     * out->shape[0] == world * in->shape[0], other dims and dtype equal. */
    int (*all_gather)(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err);
    /* in and out are [world, ...] (same shape and dtype): block j of in goes to rank j,
     * block j of out came from rank j. */
    int (*all_to_all)(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err);
    /* buf = sum over ranks of buf, in place; f32 or bf16 (tcp: f32 only). */
    int (*all_reduce_sum)(au_comm *c, au_tensor *buf, au_err *err);
    /* Wait for every enqueued op (see the rules above). */
    int (*wait)(au_comm *c, au_err *err);
    void (*abort)(au_comm *c);
    void (*destroy)(au_comm *c);
} au_comm_ops;

struct au_comm {
    const au_comm_ops *ops;
    int rank, world;
    au_backend *be;  /* whose memory the tensors are in */
    int timeout_ms;  /* a peer silent this long is failed */
    void *impl;
};

/* tcp: fds[j] is a connected stream socket to rank j for every j != rank (fds[rank]
 * is ignored). The comm takes ownership of the sockets (closed by destroy). */
int comm_tcp_create(au_comm **out, au_backend *be, int rank, int world, const int *fds, int timeout_ms,
                    au_err *err);

#define comm_all_gather(c, ...) ((c)->ops->all_gather((c), __VA_ARGS__))
#define comm_all_to_all(c, ...) ((c)->ops->all_to_all((c), __VA_ARGS__))
#define comm_all_reduce_sum(c, ...) ((c)->ops->all_reduce_sum((c), __VA_ARGS__))
#define comm_wait(c, ...) ((c)->ops->wait((c), __VA_ARGS__))
#define comm_abort(c) ((c)->ops->abort(c))
#define comm_destroy(c) ((c)->ops->destroy(c))

#endif
