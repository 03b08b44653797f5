/* cluster_listen.c - rank 0's rendezvous listener: the acceptor thread runs the handshake of
 * each new connection (cluster_proto.h) and admits it: a control connection becomes the
 * worker's session, waiting for its comm (cluster.c), unless rank 1 already has one; a data
 * connection is handed to the tcp comm being made for its session.
 */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "cluster_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef AUTEUR_VERSION
#define AUTEUR_VERSION "dev"
#endif

static void set_socket_options(int fd, int send_timeout_ms) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (send_timeout_ms > 0) {
        struct timeval tv = {send_timeout_ms / 1000, (send_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
}

static void admit_control(cluster *cl, int fd, const char *addr, cproto_peer *peer) {
    au_err err;
    char session[CPROTO_SESSION_SIZE];
    if (cproto_new_session(session, &err) != 0) {
        cluster_log("worker from %s: %s", addr, err.msg);
        close(fd);
        return;
    }
    pthread_mutex_lock(&cl->mu);
    if (cl->state != PEER_ABSENT || cl->stopping) {
        const char *why = cl->stopping ? "rank 0 is shutting down" : "rank 1 is already joined";
        pthread_mutex_unlock(&cl->mu);
        cluster_log("refused a worker from %s: %s", addr, why);
        cproto_send_refused(fd, CPROTO_REFUSED_BUSY, why);
        close(fd);
        return;
    }
    /* the welcome goes out before any other thread can send on this socket */
    if (cproto_welcome(fd, session, cl->fingerprint, &err) != 0) {
        pthread_mutex_unlock(&cl->mu);
        cluster_log("worker from %s: %s", addr, err.msg);
        close(fd);
        return;
    }
    set_socket_options(fd, cl->heartbeat_timeout_ms);
    cl->state = PEER_WAITING;
    cl->fd = fd;
    cl->data_fd = -1;
    snprintf(cl->addr, sizeof cl->addr, "%s", addr);
    snprintf(cl->session, sizeof cl->session, "%s", session);
    cl->hardware = peer->hardware;
    peer->hardware = NULL;
    cl->last_heard = cluster_now();
    cl->lost = 0;
    cl->drop_reason[0] = cl->lost_reason[0] = '\0';
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = pthread_create(&t, &attr, cluster_watcher_main, cl) == 0;
    pthread_attr_destroy(&attr);
    released r = {NULL, -1, -1, NULL};
    if (started)
        cl->n_watchers++;
    else
        cluster_take_release_locked(cl, &r);
    pthread_mutex_unlock(&cl->mu);
    cluster_finish_release(&r);
    if (!started) {
        cluster_log("worker from %s: cannot start its watcher thread", addr);
        return;
    }
    cluster_log("rank 1 admitted from %s; it joins before the next job (%s comm)", addr, cl->transport);
}

static void admit_data(cluster *cl, int fd, const char *addr, const cproto_peer *peer) {
    au_err err;
    pthread_mutex_lock(&cl->mu);
    int expected = cl->state == PEER_WAITING && !cl->lost && cl->want_data && cl->data_fd < 0 &&
                   strcmp(cl->session, peer->session) == 0;
    if (expected && cproto_welcome(fd, cl->session, cl->fingerprint, &err) == 0) {
        cl->data_fd = fd;
        pthread_cond_broadcast(&cl->cv);
        pthread_mutex_unlock(&cl->mu);
        return;
    }
    pthread_mutex_unlock(&cl->mu);
    if (!expected) {
        cluster_log("refused a data connection from %s: no comm is being made for its session", addr);
        cproto_send_refused(fd, CPROTO_REFUSED_SESSION, "no comm is being made for this session");
    }
    close(fd);
}

static void handle_connection(cluster *cl, int fd, const char *addr) {
    set_socket_options(fd, 0);
    cproto_self self = {AUTEUR_VERSION, cl->fingerprint, 0, cl->world_size, NULL};
    cproto_peer peer;
    au_err err;
    int rc = cproto_accept(fd, cl->token, &self, cl->transport, cl->heartbeat_timeout_ms, &peer, &err);
    if (rc) {
        if (rc == AU_ECONFLICT)
            cluster_log("refused a worker from %s: %s", addr, err.msg);
        else
            cluster_log("handshake with %s failed: %s", addr, err.msg);
        close(fd);
        return;
    }
    if (strcmp(peer.role, "control") == 0)
        admit_control(cl, fd, addr, &peer);
    else
        admit_data(cl, fd, addr, &peer);
    json_decref(peer.hardware);
}

static void format_addr(const struct sockaddr_storage *sa, char *out, size_t cap) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, sa->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

static void *acceptor_main(void *arg) {
    cluster *cl = arg;
    for (;;) {
        struct pollfd pf[2] = {{.fd = cl->listen_fd, .events = POLLIN},
                               {.fd = cl->stop_pipe[0], .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            cluster_log("listening: %s", strerror(errno));
            return NULL;
        }
        if (pf[1].revents)
            return NULL;
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(cl->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                struct timespec pause = {0, 100 * 1000 * 1000};
                nanosleep(&pause, NULL);
            }
            continue;
        }
        char addr[80];
        format_addr(&sa, addr, sizeof addr);
        handle_connection(cl, fd, addr);
    }
}

/* "HOST:PORT" or "[V6]:PORT" -> a listening socket. */
static int listen_on(const char *rendezvous, int *fd_out, int *port_out, au_err *err) {
    char host[256], port[8];
    int rc = cproto_split_address(rendezvous, host, port, err);
    if (rc)
        return au_err_prefix(err, "rendezvous");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
                    *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return au_errf(err, AU_EINVAL, "rendezvous \"%s\": %s", rendezvous, gai_strerror(gai));
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 8) != 0)
        rc = au_errf(err, AU_EIO, "rendezvous %s: cannot listen: %s", rendezvous, strerror(errno));
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        rc = au_errf(err, AU_EIO, "rendezvous %s: %s", rendezvous, strerror(errno));
    if (rc) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    *port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                               : ((struct sockaddr_in *)&sa)->sin_port);
    *fd_out = fd;
    return 0;
}

int cluster_listen_start(cluster *cl, const char *rendezvous, au_err *err) {
    int rc = listen_on(rendezvous, &cl->listen_fd, &cl->port, err);
    if (rc)
        return rc;
    if (pipe2(cl->stop_pipe, O_CLOEXEC) != 0) {
        rc = au_errf(err, AU_EIO, "cluster: cannot start the listener: %s", strerror(errno));
        close(cl->listen_fd);
        return rc;
    }
    if (pthread_create(&cl->acceptor, NULL, acceptor_main, cl) != 0) {
        close(cl->listen_fd);
        close(cl->stop_pipe[0]);
        close(cl->stop_pipe[1]);
        return au_errf(err, AU_EIO, "cluster: cannot start the listener thread");
    }
    return 0;
}

void cluster_listen_stop(cluster *cl) {
    if (write(cl->stop_pipe[1], "x", 1) != 1)
        cluster_log("stopping the listener: %s", strerror(errno));
    pthread_join(cl->acceptor, NULL);
    close(cl->listen_fd);
    close(cl->stop_pipe[0]);
    close(cl->stop_pipe[1]);
}
