/* worker.h - rank 1's side of the cluster: one session with rank 0 (cluster.h is rank 0's).
 *
 * A session connects to the rendezvous address, runs the handshake (cluster_proto.h), then
 * follows rank 0 on the control connection: it makes the comm when told (tcp: over a second,
 * authenticated connection of the same session; nccl: from the unique id rank 0 sent), runs
 * each job as its rank of pipeline_generate_ranked, runs the comm bench, and exchanges
 * heartbeats every second. Rank 0 silent longer than the heartbeat timeout, EOF or an error
 * aborts the comm (the job stops with AU_ECOMM) and ends the session; so does rank 0's
 * shutdown. A job or bench that fails on this side aborts the comm too, so rank 0 is never
 * left waiting in a collective, and the comm is made again before the next job.
 */
#ifndef AU_WORKER_H
#define AU_WORKER_H

#include <jansson.h>

#include "config.h"
#include "pipeline.h"
#include "status.h"

typedef struct worker_opts {
    au_pipeline *pipe;
    const cluster_config *cluster;
    const char *fingerprint; /* pipeline_model_fingerprint of pipe */
    const json_t *hardware;  /* sent at join (health_local_hardware_json) */
    int stop_fd;             /* readable once the process is asked to stop (SIGTERM, SIGINT) */
} worker_opts;

enum {
    WORKER_RECONNECT = 0, /* rank 0 lost, shut down or not reached (err says why): try again */
    WORKER_STOP,          /* stop_fd fired; the running job was finished first */
    WORKER_REFUSED,       /* token, versions, model, world size or rank differ: err says which */
};

/* One session; *joined is set when the handshake succeeded (the backoff starts over). */
int worker_session(const worker_opts *o, int *joined, au_err *err);

#endif
