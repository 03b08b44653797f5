/* cluster.c - rank 0's side of the cluster (cluster.h): the worker's session and its watcher,
 * the comm made between jobs, the job and bench exchanges; the listener and the admission of
 * new connections are in cluster_listen.c.
 *
 * Threads and state. Everything about rank 1 is under cl->mu; sends on its control socket are
 * under cl->send_mu (taken after mu, never before). The acceptor thread runs each new
 * connection's handshake. A watcher thread per session sends a heartbeat every second, reads
 * the worker's messages, and is the only one to declare the worker lost (silence, EOF, a socket
 * or protocol error; also when another thread shuts the socket down to drop it, with
 * drop_reason saying why). One caller at a time uses the comm (`busy`: making it, a job, a
 * bench). When the worker is lost, the comm is aborted at once (the running job's collectives
 * fail with AU_ECOMM) and everything of the session is released by whoever comes last: the
 * watcher when the comm is idle, else the user when it finishes (use_end).
 */
#include "cluster_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster_comm.h"

#define HEARTBEAT_INTERVAL_MS 1000
#define REPLY_WAIT_S 30   /* the worker's side of making a comm or of a bench */
#define JOB_END_WAIT_S 60 /* the worker finishing its part once rank 0's pipeline returned */
#define USE_WAIT_S 30     /* another caller finishing with the comm */

double cluster_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cluster_log(const char *fmt, ...) {
    va_list ap;
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "auteur: cluster: %s\n", buf);
}

/* Wait on cl->cv until *flag or the worker is lost, up to seconds; mu held. 1 when *flag. */
static int wait_reply_locked(cluster *cl, const int *flag, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    while (!*flag && !cl->lost)
        if (pthread_cond_timedwait(&cl->cv, &cl->mu, &deadline) == ETIMEDOUT)
            break;
    return *flag != 0;
}

static int send_msg(cluster *cl, const json_t *msg, au_err *err) {
    pthread_mutex_lock(&cl->send_mu);
    int rc = cl->fd >= 0 ? cproto_send(cl->fd, msg, err) : au_errf(err, AU_ECOMM, "rank 1 is not connected");
    pthread_mutex_unlock(&cl->send_mu);
    return rc;
}

static int send_type(cluster *cl, const char *type, au_err *err) {
    pthread_mutex_lock(&cl->send_mu);
    int rc =
        cl->fd >= 0 ? cproto_send_type(cl->fd, type, err) : au_errf(err, AU_ECOMM, "rank 1 is not connected");
    pthread_mutex_unlock(&cl->send_mu);
    return rc;
}

/* ---- losing and releasing the worker ---- */

void cluster_take_release_locked(cluster *cl, released *r) {
    pthread_mutex_lock(&cl->send_mu);
    r->fd = cl->fd;
    cl->fd = -1;
    pthread_mutex_unlock(&cl->send_mu);
    r->comm = cl->comm;
    r->data_fd = cl->data_fd;
    r->hardware = cl->hardware;
    cl->comm = NULL;
    cl->data_fd = -1;
    cl->hardware = NULL;
    cl->state = PEER_ABSENT;
    cl->lost = 0;
    cl->job_running = 0;
    pthread_cond_broadcast(&cl->cv);
}

void cluster_finish_release(released *r) {
    if (r->comm)
        comm_destroy(r->comm);
    if (r->fd >= 0)
        close(r->fd);
    if (r->data_fd >= 0)
        close(r->data_fd);
    json_decref(r->hardware);
}

/* Drop the worker: shut its socket so the watcher declares it lost with this reason. Only a
 * caller holding the comm (busy) or cluster_stop, so the socket cannot be released meanwhile. */
static void drop(cluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void drop(cluster *cl, const char *fmt, ...) {
    pthread_mutex_lock(&cl->mu);
    if (cl->state != PEER_ABSENT && !cl->lost && cl->fd >= 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cl->drop_reason, sizeof cl->drop_reason, fmt, ap);
        va_end(ap);
        shutdown(cl->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&cl->mu);
}

/* The watcher's last act: the worker is gone. */
static void lose(cluster *cl, int fd, const char *reason) {
    shutdown(fd, SHUT_RDWR); /* a send blocked on a hung worker returns now */
    released r = {NULL, -1, -1, NULL};
    pthread_mutex_lock(&cl->mu);
    cl->lost = 1;
    snprintf(cl->lost_reason, sizeof cl->lost_reason, "%s", cl->drop_reason[0] ? cl->drop_reason : reason);
    if (cl->comm)
        comm_abort(cl->comm);
    if (cl->stopping)
        cluster_log("rank 1 (%s) disconnected: %s", cl->addr, cl->lost_reason);
    else
        cluster_log("rank 1 (%s) lost: %s; rank 0 serves alone until it rejoins", cl->addr, cl->lost_reason);
    if (!cl->busy)
        cluster_take_release_locked(cl, &r);
    cl->n_watchers--;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    cluster_finish_release(&r);
}

/* ---- using the comm: one caller at a time ---- */

static int use_begin(cluster *cl, peer_state need, au_err *err) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += USE_WAIT_S;
    pthread_mutex_lock(&cl->mu);
    while (cl->busy && !cl->stopping)
        if (pthread_cond_timedwait(&cl->cv, &cl->mu, &deadline) == ETIMEDOUT)
            break;
    int rc = 0;
    if (cl->busy)
        rc = au_errf(err, AU_EBUSY, "the comm with rank 1 is in use");
    else if (cl->stopping || cl->state != need || cl->lost)
        rc = au_errf(err, AU_ECOMM, "rank 1 is not joined");
    else
        cl->busy = 1;
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

static void use_end(cluster *cl) {
    released r = {NULL, -1, -1, NULL};
    pthread_mutex_lock(&cl->mu);
    cl->busy = 0;
    if (cl->lost)
        cluster_take_release_locked(cl, &r);
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    cluster_finish_release(&r);
}

/* After a job or bench that failed on either side the comm may be mid-collective: both sides
 * destroy it and rank 0 makes a new one before the next job (cluster_admit). */
static void renew_comm(cluster *cl) {
    pthread_mutex_lock(&cl->mu);
    au_comm *old = NULL;
    if (!cl->lost && cl->state == PEER_JOINED) {
        old = cl->comm;
        cl->comm = NULL;
        cl->state = PEER_WAITING;
    }
    pthread_mutex_unlock(&cl->mu);
    if (old) {
        comm_destroy(old);
        cluster_log("the comm with rank 1 is made again before the next job");
    }
}

/* ---- the watcher ---- */

/* One message from the worker; non-zero ends the session (reason in err). */
static int handle_message(cluster *cl, const json_t *msg, au_err *err) {
    const char *type = cproto_type(msg);
    const char *message = json_string_value(json_object_get(msg, "message"));
    pthread_mutex_lock(&cl->mu);
    cl->last_heard = cluster_now();
    int rc = 0, *flag = NULL, ok = 0;
    if (!strcmp(type, "comm_ready") || !strcmp(type, "comm_failed")) {
        flag = &cl->reply.comm;
        ok = !strcmp(type, "comm_ready");
    } else if (!strcmp(type, "job_done") || !strcmp(type, "job_failed")) {
        flag = &cl->reply.job;
        ok = !strcmp(type, "job_done");
        int code = (int)json_integer_value(json_object_get(msg, "code"));
        cl->reply.job_code = ok ? 0 : code < 0 ? code : AU_EINTERNAL;
        /* rank 0 must not wait in a collective for a rank that left the job */
        if (!ok && code != AU_ECANCELED && cl->job_running && cl->comm)
            comm_abort(cl->comm);
    } else if (!strcmp(type, "bench_done") || !strcmp(type, "bench_failed")) {
        flag = &cl->reply.bench;
        ok = !strcmp(type, "bench_done");
    } else if (!strcmp(type, "leaving")) {
        rc = au_errf(err, AU_ECOMM, "the worker is shutting down");
    } else if (strcmp(type, "heartbeat") != 0) {
        rc = au_errf(err, AU_EFORMAT, "unexpected message \"%s\" from rank 1", type);
    }
    if (flag) {
        *flag = ok ? 1 : -1;
        snprintf(cl->reply.message, sizeof cl->reply.message, "%s", message ? message : "");
        pthread_cond_broadcast(&cl->cv);
    }
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

void *cluster_watcher_main(void *arg) {
    cluster *cl = arg;
    pthread_mutex_lock(&cl->mu);
    int fd = cl->fd; /* stays open until this thread has declared the worker lost */
    pthread_mutex_unlock(&cl->mu);
    double timeout_s = cl->heartbeat_timeout_ms / 1000.0, next_beat = cluster_now();
    au_err err;
    char reason[512] = "";
    for (;;) {
        double now = cluster_now();
        if (now >= next_beat) {
            if (send_type(cl, "heartbeat", &err) != 0) {
                snprintf(reason, sizeof reason, "%s", err.msg);
                break;
            }
            next_beat = now + HEARTBEAT_INTERVAL_MS / 1000.0;
        }
        pthread_mutex_lock(&cl->mu);
        double silent = now - cl->last_heard;
        pthread_mutex_unlock(&cl->mu);
        if (silent > timeout_s) {
            snprintf(reason, sizeof reason, "no heartbeat for %.1f s (timeout %.0f s)", silent, timeout_s);
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int wait_ms = (int)((next_beat - now) * 1000) + 1;
        int pr = poll(&pf, 1, wait_ms > 0 ? wait_ms : 0);
        if (pr < 0 && errno != EINTR) {
            snprintf(reason, sizeof reason, "polling the control connection: %s", strerror(errno));
            break;
        }
        if (pr <= 0)
            continue;
        json_t *msg = NULL;
        int rc = cproto_recv(fd, cl->heartbeat_timeout_ms, &msg, &err);
        if (rc == 0)
            rc = handle_message(cl, msg, &err);
        json_decref(msg);
        if (rc) {
            snprintf(reason, sizeof reason, "%s", err.msg);
            break;
        }
    }
    lose(cl, fd, reason);
    return NULL;
}

/* ---- life cycle ---- */

int cluster_start(cluster **out, const cluster_opts *o, au_err *err) {
    *out = NULL;
    if (o->world_size != 2)
        return au_errf(err, AU_EINVAL, "cluster: world size %d (only 2 ranks are supported)", o->world_size);
    if (!o->token || !*o->token)
        return au_errf(err, AU_EINVAL, "cluster: no cluster token");
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl || !(cl->token = strdup(o->token))) {
        free(cl);
        return au_errf(err, AU_ENOMEM, "cluster: out of memory");
    }
    cl->world_size = o->world_size;
    cl->heartbeat_timeout_ms = o->heartbeat_timeout_s * 1000;
    cl->pipe = o->pipe;
    cl->fd = cl->data_fd = -1;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_mutex_init(&cl->send_mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    int rc;
    if ((rc = cluster_comm_choose(o->pipe, o->comm, &cl->transport, err)) ||
        (rc = pipeline_model_fingerprint(o->pipe, cl->fingerprint, err)) ||
        (rc = cluster_listen_start(cl, o->rendezvous, err)))
        goto fail;
    cluster_log("rank 0 of %d, listening for workers on %s (port %d), %s comm, heartbeat timeout %d s",
                cl->world_size, o->rendezvous, cl->port, cl->transport, o->heartbeat_timeout_s);
    *out = cl;
    return 0;
fail:
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->send_mu);
    pthread_mutex_destroy(&cl->mu);
    free(cl->token);
    free(cl);
    return rc;
}

void cluster_stop(cluster *cl) {
    if (!cl)
        return;
    cluster_listen_stop(cl);
    au_err ignored;
    pthread_mutex_lock(&cl->mu);
    cl->stopping = 1;
    int connected = cl->state != PEER_ABSENT && !cl->lost;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    if (connected) {
        send_type(cl, "shutdown", &ignored);
        drop(cl, "rank 0 is shutting down");
    }
    pthread_mutex_lock(&cl->mu);
    while (cl->n_watchers > 0)
        pthread_cond_wait(&cl->cv, &cl->mu);
    released r = {NULL, -1, -1, NULL};
    if (cl->state != PEER_ABSENT)
        cluster_take_release_locked(cl, &r);
    pthread_mutex_unlock(&cl->mu);
    cluster_finish_release(&r);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->send_mu);
    pthread_mutex_destroy(&cl->mu);
    free(cl->token);
    free(cl);
}

int cluster_port(const cluster *cl) {
    return cl->port;
}

/* ---- queries ---- */

int cluster_world_size(const cluster *cl) {
    return cl->world_size;
}

static int joined_locked(const cluster *cl) {
    return cl->state == PEER_JOINED && !cl->lost;
}

int cluster_joined(const cluster *cl) {
    pthread_mutex_lock((pthread_mutex_t *)&cl->mu);
    int n = 1 + joined_locked(cl);
    pthread_mutex_unlock((pthread_mutex_t *)&cl->mu);
    return n;
}

const char *cluster_comm_name(const cluster *cl) {
    pthread_mutex_lock((pthread_mutex_t *)&cl->mu);
    const char *name = joined_locked(cl) ? cl->transport : "";
    pthread_mutex_unlock((pthread_mutex_t *)&cl->mu);
    return name;
}

json_t *cluster_rank_report(cluster *cl, int rank) {
    pthread_mutex_lock(&cl->mu);
    json_t *hw = rank == 1 && joined_locked(cl) ? json_incref(cl->hardware) : NULL;
    pthread_mutex_unlock(&cl->mu);
    return hw;
}

/* ---- the comm, made between jobs ---- */

static int make_comm(cluster *cl, au_comm **comm, au_err *err) {
    char id_hex[CLUSTER_NCCL_ID_HEX] = "";
    int tcp = strcmp(cl->transport, "tcp") == 0;
    int rc = tcp ? 0 : cluster_comm_nccl_id(id_hex, err);
    if (rc)
        return rc;
    json_t *msg =
        tcp ? json_pack("{s:s, s:s}", "type", "comm", "transport", cl->transport)
            : json_pack("{s:s, s:s, s:s}", "type", "comm", "transport", cl->transport, "id", id_hex);
    rc = msg ? send_msg(cl, msg, err) : au_errf(err, AU_ENOMEM, "out of memory");
    json_decref(msg);
    if (rc)
        return rc;
    if (tcp) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += REPLY_WAIT_S;
        pthread_mutex_lock(&cl->mu);
        while (cl->data_fd < 0 && !cl->lost && cl->reply.comm == 0)
            if (pthread_cond_timedwait(&cl->cv, &cl->mu, &deadline) == ETIMEDOUT)
                break;
        int data_fd = cl->data_fd;
        if (data_fd < 0 && cl->reply.comm < 0)
            au_errf(err, AU_ECOMM, "rank 1: %s", cl->reply.message);
        else if (data_fd < 0)
            au_errf(err, AU_ECOMM, "its data connection did not arrive within %d s", REPLY_WAIT_S);
        cl->data_fd = -1; /* the comm takes it */
        cl->want_data = 0;
        pthread_mutex_unlock(&cl->mu);
        if (data_fd < 0)
            return AU_ECOMM;
        rc = cluster_comm_tcp_join(comm, cl->pipe, 0, data_fd, err);
    } else {
        rc = cluster_comm_nccl_join(comm, cl->pipe, 0, cl->world_size, id_hex, err);
    }
    if (rc)
        return rc;
    pthread_mutex_lock(&cl->mu);
    if (!wait_reply_locked(cl, &cl->reply.comm, REPLY_WAIT_S))
        rc = au_errf(err, AU_ECOMM, "rank 1 did not confirm its comm within %d s", REPLY_WAIT_S);
    else if (cl->reply.comm < 0)
        rc = au_errf(err, AU_ECOMM, "rank 1: %s", cl->reply.message);
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

void cluster_admit(cluster *cl) {
    pthread_mutex_lock(&cl->mu);
    if (cl->state != PEER_WAITING || cl->lost || cl->busy || cl->stopping) {
        pthread_mutex_unlock(&cl->mu);
        return;
    }
    cl->busy = 1;
    cl->reply.comm = 0;
    cl->data_fd = -1;
    cl->want_data = strcmp(cl->transport, "tcp") == 0;
    char addr[sizeof cl->addr];
    snprintf(addr, sizeof addr, "%s", cl->addr);
    pthread_mutex_unlock(&cl->mu);

    au_comm *comm = NULL;
    au_err err;
    double t0 = cluster_now();
    int rc = make_comm(cl, &comm, &err);
    pthread_mutex_lock(&cl->mu);
    cl->want_data = 0;
    cl->comm = comm; /* released with the session if it was lost meanwhile */
    int joined = rc == 0 && !cl->lost;
    if (joined)
        cl->state = PEER_JOINED;
    pthread_mutex_unlock(&cl->mu);
    if (joined)
        cluster_log("rank 1 (%s) joined: %s comm made in %.2f s; jobs run on 2 ranks", addr, cl->transport,
                    cluster_now() - t0);
    else if (rc)
        drop(cl, "making the %s comm failed: %s", cl->transport, err.msg);
    use_end(cl);
}

/* ---- jobs ---- */

int cluster_job_begin(cluster *cl, const char *job_id, const au_gen_params *resolved, au_parallel mode,
                      au_comm **comm, au_err *err) {
    *comm = NULL;
    int rc = use_begin(cl, PEER_JOINED, err);
    if (rc) /* not joined, or busy past all reason: either way the job runs alone */
        return err->code = AU_ECOMM;
    pthread_mutex_lock(&cl->mu);
    memset(&cl->reply, 0, sizeof cl->reply);
    cl->job_running = 1;
    au_comm *c = cl->comm;
    pthread_mutex_unlock(&cl->mu);
    json_t *msg = cproto_job_to_json(job_id, resolved, mode);
    rc = msg ? send_msg(cl, msg, err) : au_errf(err, AU_ENOMEM, "out of memory");
    json_decref(msg);
    if (rc) {
        drop(cl, "sending job %s failed: %s", job_id, err->msg);
        pthread_mutex_lock(&cl->mu);
        cl->job_running = 0;
        pthread_mutex_unlock(&cl->mu);
        use_end(cl);
        err->code = AU_ECOMM;
        return au_err_prefix(err, "rank 1 did not take the job");
    }
    *comm = c;
    return 0;
}

void cluster_job_cancel(cluster *cl) {
    pthread_mutex_lock(&cl->mu);
    int running = cl->job_running && !cl->lost;
    pthread_mutex_unlock(&cl->mu);
    au_err ignored;
    if (running)
        send_type(cl, "cancel", &ignored);
}

int cluster_job_end(cluster *cl, int local_rc, au_err *err) {
    au_err ignored;
    int failed_here = local_rc != 0 && local_rc != AU_ECANCELED;
    if (failed_here) { /* the worker must not wait in a collective for rank 0 */
        send_type(cl, "abort", &ignored);
        pthread_mutex_lock(&cl->mu);
        if (cl->comm)
            comm_abort(cl->comm);
        pthread_mutex_unlock(&cl->mu);
    }
    pthread_mutex_lock(&cl->mu);
    if (!wait_reply_locked(cl, &cl->reply.job, JOB_END_WAIT_S) && !cl->lost) {
        pthread_mutex_unlock(&cl->mu);
        drop(cl, "it did not finish its part of the job within %d s of rank 0", JOB_END_WAIT_S);
        pthread_mutex_lock(&cl->mu);
        while (!cl->lost)
            pthread_cond_wait(&cl->cv, &cl->mu);
    }
    int rc = 0, failed_there = 0;
    if (cl->lost) {
        rc = au_errf(err, AU_ECOMM, "rank 1 lost: %s", cl->lost_reason);
    } else if (cl->reply.job < 0) {
        rc = au_errf(err, cl->reply.job_code, "rank 1: %s", cl->reply.message);
        failed_there = rc != AU_ECANCELED;
    }
    cl->job_running = 0;
    pthread_mutex_unlock(&cl->mu);
    if (failed_here || failed_there)
        renew_comm(cl);
    use_end(cl);
    return rc;
}

/* ---- the comm bench (/health) ---- */

int cluster_comm_bench(cluster *cl, size_t bytes, int iters, double *busbw_gbs, double *seconds,
                       au_err *err) {
    *busbw_gbs = *seconds = 0;
    int rc = use_begin(cl, PEER_JOINED, err);
    if (rc == AU_ECOMM) {
        err->code = AU_EUNSUPPORTED;
        return au_err_prefix(err, "single rank");
    }
    if (rc)
        return rc;
    pthread_mutex_lock(&cl->mu);
    cl->reply.bench = 0;
    au_comm *comm = cl->comm;
    pthread_mutex_unlock(&cl->mu);
    json_t *msg = json_pack("{s:s, s:I, s:i}", "type", "bench", "bytes", (json_int_t)bytes, "iters", iters);
    rc = msg ? send_msg(cl, msg, err) : au_errf(err, AU_ENOMEM, "out of memory");
    json_decref(msg);
    if (rc == 0)
        rc = cluster_comm_bench_run(comm, bytes, iters, seconds, err);
    pthread_mutex_lock(&cl->mu);
    int replied = wait_reply_locked(cl, &cl->reply.bench, REPLY_WAIT_S), ok = cl->reply.bench > 0;
    if (rc == 0 && cl->lost)
        rc = au_errf(err, AU_ECOMM, "rank 1 lost: %s", cl->lost_reason);
    else if (rc == 0 && !replied)
        rc = au_errf(err, AU_ECOMM, "rank 1 did not finish the bench within %d s", REPLY_WAIT_S);
    else if (rc == 0 && !ok)
        rc = au_errf(err, AU_ECOMM, "rank 1: %s", cl->reply.message);
    pthread_mutex_unlock(&cl->mu);
    if (rc)
        renew_comm(cl);
    use_end(cl);
    if (rc == 0 && *seconds > 0) /* 2 ranks: each byte crosses the link once, 2 (n-1)/n = 1 */
        *busbw_gbs = (double)bytes * iters / *seconds / 1e9;
    return rc;
}

/* ---- health_cluster_ops ---- */

static int ops_world_size(void *cl) {
    return cluster_world_size(cl);
}
static int ops_joined(void *cl) {
    return cluster_joined(cl);
}
static const char *ops_comm_name(void *cl) {
    return cluster_comm_name(cl);
}
static json_t *ops_rank_report(void *cl, int rank) {
    return cluster_rank_report(cl, rank);
}
static int ops_comm_bench(void *cl, size_t bytes, int iters, double *busbw_gbs, double *seconds,
                          au_err *err) {
    return cluster_comm_bench(cl, bytes, iters, busbw_gbs, seconds, err);
}

const health_cluster_ops cluster_health_ops = {ops_world_size, ops_joined, ops_comm_name, ops_rank_report,
                                               ops_comm_bench};
