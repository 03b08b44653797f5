/* worker.c - one session of rank 1 with rank 0 (worker.h).
 *
 * Two threads: the session's (this caller) owns the control connection: heartbeats, reading
 * rank 0's messages, cancel and abort, the stop signal; the task thread runs what takes time
 * (making the comm, a job, a bench) one at a time and sends its reply. s->comm is made, used
 * and destroyed by the task thread; the session thread only aborts it, under s->mu. Sends on
 * the control socket go under s->send_mu.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster_comm.h"
#include "cluster_proto.h"

#ifndef AUTEUR_VERSION
#define AUTEUR_VERSION "dev"
#endif

#define HEARTBEAT_INTERVAL_MS 1000

typedef enum task_kind { TASK_NONE = 0, TASK_COMM, TASK_JOB, TASK_BENCH } task_kind;

typedef struct session {
    const worker_opts *o;
    int fd;
    char id[CPROTO_SESSION_SIZE];
    pthread_mutex_t mu, send_mu;
    pthread_cond_t cv;
    pthread_t thread;
    task_kind task; /* handed to the task thread, not started yet */
    json_t *task_msg;
    int running; /* the task thread is busy */
    int quit;
    atomic_int cancel;
    au_comm *comm;
} session;

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
    va_list ap;
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "auteur worker: %s\n", buf);
}

static int send_msg(session *s, const json_t *msg, au_err *err) {
    pthread_mutex_lock(&s->send_mu);
    int rc = cproto_send(s->fd, msg, err);
    pthread_mutex_unlock(&s->send_mu);
    return rc;
}

/* {"type": type} plus "message" when message is not NULL; errors are the session thread's to find. */
static void reply(session *s, const char *type, const char *message) {
    json_t *m = json_pack("{s:s}", "type", type);
    au_err ignored;
    if (m && message)
        json_object_set_new(m, "message", json_string(message));
    if (m)
        send_msg(s, m, &ignored);
    json_decref(m);
}

/* Take the comm away from the session and destroy it (task thread). */
static void drop_comm(session *s, int abort_first) {
    pthread_mutex_lock(&s->mu);
    au_comm *c = s->comm;
    s->comm = NULL;
    pthread_mutex_unlock(&s->mu);
    if (c && abort_first)
        comm_abort(c); /* rank 0 must not wait in a collective for this rank */
    if (c)
        comm_destroy(c);
}

/* Connect to rank 0's rendezvous within timeout_ms; the socket is left blocking (the protocol
 * bounds its waits with poll). */
static int connect_rendezvous(const char *rendezvous, int timeout_ms, int *fd_out, au_err *err) {
    char host[256], port[8];
    int rc = cproto_split_address(rendezvous, host, port, err);
    if (rc)
        return au_err_prefix(err, "rendezvous");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return au_errf(err, AU_ECOMM, "rendezvous %s: %s", rendezvous, gai_strerror(gai));
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, res->ai_protocol);
    int soerr = fd < 0 ? errno : 0;
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        soerr = errno;
        if (soerr == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof soerr;
            if (poll(&pf, 1, timeout_ms) != 1)
                soerr = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
                soerr = errno;
        }
    }
    freeaddrinfo(res);
    if (soerr == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        soerr = errno;
    if (soerr) {
        if (fd >= 0)
            close(fd);
        return au_errf(err, AU_ECOMM, "rank 0 does not answer at %s: %s", rendezvous, strerror(soerr));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    *fd_out = fd;
    return 0;
}

static void self_of(const worker_opts *o, cproto_self *self) {
    self->version = AUTEUR_VERSION;
    self->fingerprint = o->fingerprint;
    self->rank = o->cluster->rank;
    self->world_size = o->cluster->world_size;
    self->transports = cluster_comm_transports(o->pipe);
}

/* ---- tasks (the task thread) ---- */

static void task_comm(session *s, const json_t *msg) {
    const worker_opts *o = s->o;
    const char *transport = json_string_value(json_object_get(msg, "transport"));
    au_comm *comm = NULL;
    au_err err;
    int rc = 0;
    double t0 = now_mono();
    drop_comm(s, 0);
    if (transport && strcmp(transport, "tcp") == 0) {
        int fd = -1;
        char code[16], unused[CPROTO_SESSION_SIZE];
        cproto_self self;
        self_of(o, &self);
        int timeout_ms = o->cluster->heartbeat_timeout_seconds * 1000;
        rc = connect_rendezvous(o->cluster->rendezvous, timeout_ms, &fd, &err);
        if (rc == 0 && (rc = cproto_connect(fd, o->cluster->token, &self, "data", s->id, NULL, timeout_ms,
                                            unused, code, &err)) != 0)
            au_err_prefix(&err, "data connection");
        if (rc == 0)
            rc = cluster_comm_tcp_join(&comm, o->pipe, o->cluster->rank, fd, &err);
        else if (fd >= 0)
            close(fd);
    } else if (transport && strcmp(transport, "nccl") == 0) {
        rc = cluster_comm_nccl_join(&comm, o->pipe, o->cluster->rank, o->cluster->world_size,
                                    json_string_value(json_object_get(msg, "id")), &err);
    } else {
        rc = au_errf(&err, AU_EFORMAT, "unknown transport \"%s\"", transport ? transport : "(none)");
    }
    if (rc) {
        log_line("making the comm failed: %s", err.msg);
        reply(s, "comm_failed", err.msg);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->comm = comm;
    pthread_mutex_unlock(&s->mu);
    log_line("joined: %s comm with rank 0 made in %.2f s", transport, now_mono() - t0);
    reply(s, "comm_ready", NULL);
}

static void task_job(session *s, const json_t *msg) {
    const char *id = NULL;
    au_gen_params params;
    au_parallel mode = AU_PARALLEL_NONE;
    au_video video = {0};
    au_err err;
    double t0 = now_mono();
    int rc = cproto_job_from_json(msg, &id, &params, &mode, &err);
    pthread_mutex_lock(&s->mu);
    au_comm *comm = s->comm;
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && !comm)
        rc = au_errf(&err, AU_ECOMM, "no comm with rank 0");
    if (rc == 0) {
        log_line("%s: starting my part (%s)", id, pipeline_parallel_name(mode));
        rc = pipeline_generate_ranked(s->o->pipe, &params, comm, mode, NULL, NULL, &s->cancel, &video, &err);
    }
    au_video_free(&video);
    if (rc != 0 && rc != AU_ECANCELED)
        drop_comm(s, 1);
    json_t *m = json_pack("{s:s, s:s}", "type", rc == 0 ? "job_done" : "job_failed", "id", id ? id : "");
    if (m && rc != 0) {
        json_object_set_new(m, "code", json_integer(rc));
        json_object_set_new(m, "message", json_string(err.msg));
    }
    au_err ignored;
    if (m)
        send_msg(s, m, &ignored);
    json_decref(m);
    if (rc == 0)
        log_line("%s: my part (%s) done in %.2f s", id, pipeline_parallel_name(mode), now_mono() - t0);
    else
        log_line("%s: %s", id ? id : "job", err.msg);
}

static void task_bench(session *s, const json_t *msg) {
    json_int_t bytes = json_integer_value(json_object_get(msg, "bytes"));
    int iters = (int)json_integer_value(json_object_get(msg, "iters"));
    pthread_mutex_lock(&s->mu);
    au_comm *comm = s->comm;
    pthread_mutex_unlock(&s->mu);
    double seconds = 0;
    au_err err;
    int rc = comm ? cluster_comm_bench_run(comm, (size_t)(bytes > 0 ? bytes : 0), iters, &seconds, &err)
                  : au_errf(&err, AU_ECOMM, "no comm with rank 0");
    if (rc) {
        drop_comm(s, 1);
        reply(s, "bench_failed", err.msg);
        return;
    }
    reply(s, "bench_done", NULL);
}

static void *task_main(void *arg) {
    session *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->task == TASK_NONE && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        task_kind kind = s->task;
        json_t *msg = s->task_msg;
        s->task = TASK_NONE;
        s->task_msg = NULL;
        s->running = 1;
        pthread_mutex_unlock(&s->mu);
        if (kind == TASK_COMM)
            task_comm(s, msg);
        else if (kind == TASK_JOB)
            task_job(s, msg);
        else
            task_bench(s, msg);
        json_decref(msg);
        pthread_mutex_lock(&s->mu);
        s->running = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the session thread ---- */

enum { KEEP_GOING = 0, END_LOST, END_SHUTDOWN };

/* One message from rank 0: KEEP_GOING, or why the session ends (err). */
static int handle_message(session *s, json_t *msg, au_err *err) {
    const char *type = cproto_type(msg);
    task_kind kind = strcmp(type, "comm") == 0    ? TASK_COMM
                     : strcmp(type, "job") == 0   ? TASK_JOB
                     : strcmp(type, "bench") == 0 ? TASK_BENCH
                                                  : TASK_NONE;
    int rc = KEEP_GOING;
    pthread_mutex_lock(&s->mu);
    if (kind != TASK_NONE) {
        /* one task may wait while another finishes: rank 0 sends the next as soon as it has
         * this rank's reply, which the task thread sends just before it is free */
        if (s->task != TASK_NONE) {
            rc = END_LOST;
            au_errf(err, AU_EFORMAT, "rank 0 sent \"%s\" while two tasks are pending", type);
        } else {
            s->task = kind;
            s->task_msg = json_incref(msg);
            if (kind == TASK_JOB)
                s->cancel = 0; /* a cancel that follows belongs to this job */
            pthread_cond_broadcast(&s->cv);
        }
    } else if (strcmp(type, "cancel") == 0) {
        s->cancel = 1;
    } else if (strcmp(type, "abort") == 0) {
        if (s->comm)
            comm_abort(s->comm);
    } else if (strcmp(type, "shutdown") == 0) {
        rc = END_SHUTDOWN;
        au_errf(err, AU_ECOMM, "rank 0 is shutting down");
    } else if (strcmp(type, "heartbeat") != 0) {
        rc = END_LOST;
        au_errf(err, AU_EFORMAT, "unexpected message \"%s\" from rank 0", type);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Follow rank 0 until the session ends: WORKER_RECONNECT or WORKER_STOP. */
static int follow(session *s, au_err *err) {
    const double timeout_s = s->o->cluster->heartbeat_timeout_seconds;
    double last_heard = now_mono(), next_beat = last_heard;
    int stopping = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int idle = s->task == TASK_NONE && !s->running;
        pthread_mutex_unlock(&s->mu);
        if (stopping && idle) {
            pthread_mutex_lock(&s->send_mu);
            cproto_send_type(s->fd, "leaving", err);
            pthread_mutex_unlock(&s->send_mu);
            return WORKER_STOP;
        }
        double now = now_mono();
        if (now >= next_beat) {
            pthread_mutex_lock(&s->send_mu);
            int rc = cproto_send_type(s->fd, "heartbeat", err);
            pthread_mutex_unlock(&s->send_mu);
            if (rc) {
                au_err_prefix(err, "rank 0 lost");
                return WORKER_RECONNECT;
            }
            next_beat = now + HEARTBEAT_INTERVAL_MS / 1000.0;
        }
        if (now - last_heard > timeout_s) {
            au_errf(err, AU_ECOMM, "rank 0 lost: no heartbeat for %.1f s (timeout %.0f s)", now - last_heard,
                    timeout_s);
            return WORKER_RECONNECT;
        }
        struct pollfd pf[2] = {{.fd = s->fd, .events = POLLIN},
                               {.fd = stopping ? -1 : s->o->stop_fd, .events = POLLIN}};
        int wait_ms = (int)((next_beat - now) * 1000) + 1;
        if (poll(pf, 2, wait_ms > 0 ? wait_ms : 0) < 0) {
            if (errno == EINTR)
                continue;
            au_errf(err, AU_ECOMM, "polling the control connection: %s", strerror(errno));
            return WORKER_RECONNECT;
        }
        if (pf[1].revents) {
            stopping = 1;
            if (!idle)
                log_line("asked to stop: leaving once the running job is done");
        }
        if (!pf[0].revents)
            continue;
        json_t *msg;
        if (cproto_recv(s->fd, (int)(timeout_s * 1000), &msg, err) != 0) {
            au_err_prefix(err, "rank 0 lost");
            return WORKER_RECONNECT;
        }
        last_heard = now_mono();
        const char *type = cproto_type(msg);
        if (stopping && (!strcmp(type, "job") || !strcmp(type, "comm") || !strcmp(type, "bench"))) {
            /* no new work once asked to stop: rank 0 runs the job alone */
            json_decref(msg);
            pthread_mutex_lock(&s->send_mu);
            cproto_send_type(s->fd, "leaving", err);
            pthread_mutex_unlock(&s->send_mu);
            return WORKER_STOP;
        }
        int end = handle_message(s, msg, err);
        json_decref(msg);
        if (end)
            return WORKER_RECONNECT;
    }
}

int worker_session(const worker_opts *o, int *joined, au_err *err) {
    *joined = 0;
    const cluster_config *cc = o->cluster;
    int timeout_ms = cc->heartbeat_timeout_seconds * 1000, fd = -1;
    int rc = connect_rendezvous(cc->rendezvous, timeout_ms, &fd, err);
    if (rc)
        return WORKER_RECONNECT;
    struct timeval tv = {cc->heartbeat_timeout_seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    session s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.fd = fd;
    cproto_self self;
    self_of(o, &self);
    char code[16];
    rc = cproto_connect(fd, cc->token, &self, "control", "", o->hardware, timeout_ms, s.id, code, err);
    if (rc) {
        close(fd);
        if (rc == AU_ECONFLICT && strcmp(code, CPROTO_REFUSED_BUSY) != 0)
            return WORKER_REFUSED;
        au_err_prefix(err, "handshake with rank 0 at %s", cc->rendezvous);
        return WORKER_RECONNECT;
    }
    *joined = 1;
    log_line("connected to rank 0 at %s as rank %d of %d; waiting for the comm", cc->rendezvous, cc->rank,
             cc->world_size);
    pthread_mutex_init(&s.mu, NULL);
    pthread_mutex_init(&s.send_mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int result;
    if (pthread_create(&s.thread, NULL, task_main, &s) != 0) {
        au_errf(err, AU_EIO, "cannot start the task thread");
        result = WORKER_RECONNECT;
    } else {
        result = follow(&s, err);
        /* end: stop the job at its next step (its collectives fail at once), then the thread */
        pthread_mutex_lock(&s.mu);
        s.quit = 1;
        s.cancel = 1;
        if (s.comm)
            comm_abort(s.comm);
        pthread_cond_broadcast(&s.cv);
        pthread_mutex_unlock(&s.mu);
        shutdown(fd, SHUT_RDWR);
        pthread_join(s.thread, NULL);
    }
    if (s.comm)
        comm_destroy(s.comm);
    json_decref(s.task_msg);
    close(fd);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.send_mu);
    pthread_mutex_destroy(&s.mu);
    return result;
}
