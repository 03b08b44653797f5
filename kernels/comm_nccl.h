/* comm_nccl.h - the NCCL transport of engine/comm.h, for tensors of the CUDA backend.
 *
 * Rank 0 makes the unique id (comm_nccl_unique_id) and hands it to every rank over the
 * cluster's control connection; each rank then joins with comm_nccl_create. The
 * communicator is created non-blocking: joining, every op and comm_wait poll
 * ncclCommGetAsyncError and give up with AU_ECOMM after timeout_ms, aborting the
 * communicator (ncclCommAbort), so a dead or hung peer never blocks a rank forever.
 * Ops are enqueued on the CUDA backend's stream, after the ops that produce their inputs.
 *
 * Built only when nccl.h and libnccl were found (AU_HAVE_NCCL); comm_nccl_available()
 * says so at run time.
 */
#ifndef AU_COMM_NCCL_H
#define AU_COMM_NCCL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "comm.h"

#define COMM_NCCL_ID_BYTES 128

/* 1 when this build has NCCL and the library loads, else 0. */
int comm_nccl_available(void);
/* "2.27.3" into buf, or "" when unavailable. */
void comm_nccl_version(char *buf, int cap);
/* Rank 0: a fresh unique id for a new communicator. */
int comm_nccl_unique_id(uint8_t id[COMM_NCCL_ID_BYTES], au_err *err);
/* Join the communicator of `id` as `rank` of `world` on be (a CUDA backend). */
int comm_nccl_create(au_comm **out, au_backend *be, int rank, int world, const uint8_t id[COMM_NCCL_ID_BYTES],
                     int timeout_ms, au_err *err);

#ifdef __cplusplus
}
#endif

#endif
