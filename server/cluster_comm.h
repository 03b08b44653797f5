/* cluster_comm.h - the comm of a cluster rank, as both roles make and measure it: which
 * transport a rank can use (nccl on a CUDA engine of a build with NCCL, tcp anywhere), the NCCL
 * unique id as text for the control channel, joining a comm, and the all-reduce benchmark the
 * /health comm check runs on every rank at once.
 */
#ifndef AU_CLUSTER_COMM_H
#define AU_CLUSTER_COMM_H

#include <stddef.h>

#include "comm.h"
#include "pipeline.h"
#include "status.h"

/* A peer silent this long inside a collective (or while joining) is failed by the comm itself.
 * Heartbeats detect a dead or hung rank within seconds; this is the backstop for what they
 * cannot reach (an NCCL init in progress), long enough for the slower rank of a large model to
 * catch up within a step. */
#define CLUSTER_COMM_TIMEOUT_MS (120 * 1000)

/* 1 when this process can join an NCCL comm on pipe's backend. */
int cluster_comm_can_nccl(au_pipeline *pipe);
/* The transports this rank can join, "tcp" or "tcp,nccl" (static). */
const char *cluster_comm_transports(au_pipeline *pipe);
/* want: "auto", "nccl" or "tcp" -> "nccl" or "tcp" (static). AU_EUNSUPPORTED when nccl is
 * asked for and cannot be had (saying why), AU_EINVAL for another name. */
int cluster_comm_choose(au_pipeline *pipe, const char *want, const char **transport, au_err *err);

#define CLUSTER_NCCL_ID_HEX 257 /* COMM_NCCL_ID_BYTES in hex and a NUL */
/* Rank 0: a fresh NCCL unique id in hex. */
int cluster_comm_nccl_id(char hex[CLUSTER_NCCL_ID_HEX], au_err *err);
/* Join the NCCL comm of id_hex as rank of world on pipe's backend. */
int cluster_comm_nccl_join(au_comm **out, au_pipeline *pipe, int rank, int world, const char *id_hex,
                           au_err *err);
/* The tcp comm of two ranks over the connected socket fd (taken over, closed by the comm). */
int cluster_comm_tcp_join(au_comm **out, au_pipeline *pipe, int rank, int fd, au_err *err);

/* iters all-reduce (sum) of `bytes` of float32 on comm, after one untimed warm-up: the seconds
 * the timed ones took (every rank calls it with the same arguments). */
int cluster_comm_bench_run(au_comm *comm, size_t bytes, int iters, double *seconds, au_err *err);

#endif
