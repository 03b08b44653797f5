/* cluster.h - the ranks of one engine as rank 0 (`auteur serve --world-size 2`) sees them.
 *
 * Rank 0 listens on the rendezvous address. A worker (`auteur worker`, cmd_worker.c) connects,
 * both prove the cluster token to each other (HMAC-SHA-256 of fresh nonces, cluster_proto.h),
 * and rank 0 compares protocol and Auteur versions, model fingerprint, world size and rank; a
 * mismatch is refused with the reason on both sides and rank 0 goes on serving. An admitted
 * worker waits until the dispatcher is between jobs (cluster_admit, which the dispatcher calls
 * before each claim and every second while idle): then the comm is made
 * (NCCL from a unique id rank 0 sends, or tcp over a second authenticated connection), and the
 * worker is joined. The first connection stays the control channel: job start, cancel,
 * heartbeats every second both ways, job done/failed, comm bench, shutdown. Tensors never go
 * over it.
 *
 * A watcher thread per worker reads its messages; silence longer than the heartbeat timeout,
 * EOF or a socket error aborts the comm (the running job then gets AU_ECOMM from the pipeline),
 * marks the worker lost with a log line naming the reason, and the comm is destroyed once the
 * job has returned (cluster_job_end). The worker reconnects and is admitted again between jobs.
 *
 * Threads: cluster_admit, cluster_job_* run on the dispatcher's thread; cluster_comm_bench on
 * the /health runner's while the dispatcher is held (no job runs); the queries from any thread.
 * World sizes 1 and 2 (one worker, rank 1): the tcp comm needs a socket between every pair of
 * ranks and the CFG mode two ranks.
 */
#ifndef AU_CLUSTER_H
#define AU_CLUSTER_H

#include <jansson.h>
#include <stddef.h>

#include "comm.h"
#include "health.h"
#include "pipeline.h"
#include "status.h"

typedef struct cluster cluster;

typedef struct cluster_opts {
    int world_size;          /* 2 */
    const char *rendezvous;  /* "HOST:PORT" to listen on; port 0 = any (cluster_port says which) */
    const char *token;       /* the cluster token; only HMACs of it leave the process */
    const char *comm;        /* "auto" (nccl on a CUDA engine with NCCL available, else tcp), "nccl", "tcp" */
    int heartbeat_timeout_s; /* a worker silent this long is lost */
    au_pipeline *pipe;       /* the engine: its fingerprint and backend */
} cluster_opts;

/* Listen and start the accept thread. AU_EINVAL for a bad rendezvous or comm, AU_EUNSUPPORTED
 * for nccl without NCCL or a CUDA engine, AU_EIO when the address cannot be listened on. */
int cluster_start(cluster **out, const cluster_opts *opts, au_err *err);
/* Tell every worker rank 0 is going away, close every connection and comm, free. */
void cluster_stop(cluster *cl);
/* The port listened on. */
int cluster_port(const cluster *cl);

/* ---- what /health and /metrics ask (any thread) ---- */
int cluster_world_size(const cluster *cl);
/* Ranks joined now (a comm made with them), rank 0 included. */
int cluster_joined(const cluster *cl);
/* The comm's transport: "nccl" or "tcp" while a comm exists, else "". */
const char *cluster_comm_name(const cluster *cl);
/* A new reference to the JSON object rank sent at join ("hardware": health_local_hardware_json
 * on its side), or NULL when rank is not joined. */
json_t *cluster_rank_report(cluster *cl, int rank);
/* All-reduce (sum) of `bytes` of f32 iters times across the joined ranks, timed on rank 0: the
 * bus bandwidth (2 (n-1)/n bytes per second) and the seconds. Only between jobs (the caller holds
 * the dispatcher). AU_EUNSUPPORTED with one rank joined, AU_ECOMM when a worker fails meanwhile. */
int cluster_comm_bench(cluster *cl, size_t bytes, int iters, double *busbw_gbs, double *seconds, au_err *err);
/* The above as the ops health_service_opts takes (first argument: the cluster). */
extern const health_cluster_ops cluster_health_ops;

/* ---- the dispatcher's side (its thread) ---- */

/* Between jobs: make the comm with each admitted worker, and destroy the comm of a lost one.
 * A failure is logged and that worker dropped (it reconnects). */
void cluster_admit(cluster *cl);
/* Start job_id on every joined rank with the resolved params (seed included) and mode, and give
 * the comm to run pipeline_generate_ranked with. AU_ECOMM when no worker is joined or the
 * message could not be sent (run the job alone). */
int cluster_job_begin(cluster *cl, const char *job_id, const au_gen_params *resolved, au_parallel mode,
                      au_comm **comm, au_err *err);
/* Ask the workers to stop the running job (DELETE, shutdown); any thread. */
void cluster_job_cancel(cluster *cl);
/* After rank 0's pipeline returned local_rc: wait for the worker's done/failed (a failure on
 * rank 0 other than a cancel first aborts the comm so the worker does not wait in a collective).
 * 0 when the worker finished; AU_ECOMM when it was lost; else the worker's error. After a
 * failure on either side other than a cancel, the comm is made again before the next job. */
int cluster_job_end(cluster *cl, int local_rc, au_err *err);

#endif
