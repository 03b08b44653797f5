/* cluster_internal.h - what the two halves of rank 0's cluster share: cluster.c (the worker's
 * session: watcher, comm, jobs, bench) and cluster_listen.c (the rendezvous listener and the
 * admission of new connections). See cluster.c for the threads and the locking rules.
 */
#ifndef AU_CLUSTER_INTERNAL_H
#define AU_CLUSTER_INTERNAL_H

#include <pthread.h>

#include "cluster.h"
#include "cluster_proto.h"

typedef enum peer_state { PEER_ABSENT = 0, PEER_WAITING, PEER_JOINED } peer_state;

/* The worker's replies, each 0 until it arrives, then 1 (done) or -1 (failed). */
typedef struct peer_replies {
    int comm, job, bench;
    int job_code; /* an au_status when job is -1 */
    char message[400];
} peer_replies;

/* What a lost session leaves to free. */
typedef struct released {
    au_comm *comm;
    int fd, data_fd;
    json_t *hardware;
} released;

struct cluster {
    int world_size, heartbeat_timeout_ms;
    char *token;
    const char *transport; /* "nccl" or "tcp" */
    au_pipeline *pipe;
    char fingerprint[65];
    int listen_fd, port;
    int stop_pipe[2];
    pthread_t acceptor;

    pthread_mutex_t mu, send_mu;
    pthread_cond_t cv;
    int stopping, n_watchers;
    /* rank 1 */
    peer_state state;
    int fd;      /* control connection */
    int data_fd; /* tcp: the data connection, until the comm takes it */
    int want_data;
    char addr[80], session[CPROTO_SESSION_SIZE];
    json_t *hardware;
    double last_heard;
    int lost;
    char lost_reason[512], drop_reason[512];
    int busy, job_running;
    au_comm *comm;
    peer_replies reply;
};

double cluster_now(void);
void cluster_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watcher of the session just admitted (a detached thread; n_watchers counted by the caller). */
void *cluster_watcher_main(void *arg);
/* Move what the session holds into r and forget it; mu held, the comm idle. */
void cluster_take_release_locked(cluster *cl, released *r);
void cluster_finish_release(released *r);

/* Listen on the rendezvous address and start the acceptor thread (cluster_listen.c); stop it. */
int cluster_listen_start(cluster *cl, const char *rendezvous, au_err *err);
void cluster_listen_stop(cluster *cl);

#endif
