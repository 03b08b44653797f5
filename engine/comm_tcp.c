/* comm_tcp.c - the "tcp" transport of comm.h: collectives over one stream socket per peer.
 *
 * Every op is a set of point-to-point transfers, one message each way per peer, driven
 * together by one poll loop over non-blocking sockets, so two ranks sending big buffers to
 * each other never wait on each other's full socket buffers:
 *   all_gather      send `in` to every peer, receive peer j's `in` into block j of out;
 *   all_to_all      send block j of in to peer j, receive block j of out from peer j;
 *   all_reduce_sum  reduce-scatter then all-gather over `world` chunks: rank r receives
 *                   every peer's copy of chunk r, sums the copies in rank order and sends
 *                   the sum back out, so every rank holds bit-identical results.
 * A message is a 32-byte header (magic, op, dtype, op sequence number, op bytes, payload
 * bytes; little endian) and the payload. The receiver checks the header against the op it
 * is running, so ranks that call different ops fail with a message naming both.
 *
 * Failure: a peer that closes or resets fails the op at once; a peer that makes no progress
 * for timeout_ms fails it too. comm_abort (any thread) and any failure shut the sockets
 * down: the blocked poll returns, this rank's later ops fail fast, and the peers see the
 * connection end instead of waiting for their timeout. The comm owns the sockets from
 * comm_tcp_create on, also when creating fails (unless rank or world is out of range).
 *
 * Memory: tensors of the CPU backend are used in place; others are staged through one host
 * buffer kept by the comm (grown when an op needs more, reused after).
 */
#define _GNU_SOURCE
#include "comm.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define WIRE_MAGIC 0x4d435541u /* "AUCM" */
#define WIRE_HEADER_BYTES 32
#define STAGE_ALIGN 64

typedef enum wire_op {
    WIRE_ALL_GATHER = 1,
    WIRE_ALL_TO_ALL = 2,
    WIRE_REDUCE_SCATTER = 3, /* first half of all_reduce_sum */
    WIRE_REDUCE_GATHER = 4,  /* second half of all_reduce_sum */
} wire_op;

typedef struct wire_header {
    uint32_t magic;
    uint16_t op, dtype;
    uint64_t seq;           /* ops this comm ran before this one */
    uint64_t op_bytes;      /* bytes of the sender's tensor (all_gather: in) */
    uint64_t payload_bytes; /* bytes that follow the header */
} wire_header;

/* One peer's share of the current op: what goes out to it and what comes back. */
typedef struct peer_xfer {
    uint8_t send_head[WIRE_HEADER_BYTES];
    const uint8_t *send_data;
    size_t send_bytes, send_done; /* send_done counts header and payload */
    uint8_t recv_head[WIRE_HEADER_BYTES];
    uint8_t *recv_data;
    size_t recv_bytes, recv_done; /* recv_done counts header and payload */
    double last_progress_s;
} peer_xfer;

enum comm_state { COMM_OK = 0, COMM_ABORTED, COMM_FAILED };

typedef struct tcp_comm {
    au_comm base;
    int *fds;               /* [world], fds[rank] = -1 */
    peer_xfer *xfers;       /* [world], current op */
    struct pollfd *pollfds; /* [world] */
    int *poll_peer;         /* [world]: the peer of pollfds[i] */
    atomic_int state;       /* enum comm_state */
    char failure[512];      /* the first failure, for later ops */
    uint64_t seq;           /* exchanges run so far */
    uint8_t *stage;         /* host staging and reduce scratch */
    size_t stage_cap;
    bool host_memory; /* the backend's tensors are host memory (CPU backend) */
} tcp_comm;

static const char *wire_op_name(uint16_t op) {
    switch (op) {
    case WIRE_ALL_GATHER: return "all_gather";
    case WIRE_ALL_TO_ALL: return "all_to_all";
    case WIRE_REDUCE_SCATTER: return "all_reduce_sum (reduce-scatter)";
    case WIRE_REDUCE_GATHER: return "all_reduce_sum (gather)";
    default: return "an unknown op";
    }
}

static const char *dtype_name_or_unknown(uint16_t dt) {
    return dt < AU_DTYPE_COUNT ? au_dtype_name((au_dtype)dt) : "unknown dtype";
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void header_encode(uint8_t out[WIRE_HEADER_BYTES], const wire_header *h) {
    put_le(out, h->magic, 4);
    put_le(out + 4, h->op, 2);
    put_le(out + 6, h->dtype, 2);
    put_le(out + 8, h->seq, 8);
    put_le(out + 16, h->op_bytes, 8);
    put_le(out + 24, h->payload_bytes, 8);
}

static wire_header header_decode(const uint8_t in[WIRE_HEADER_BYTES]) {
    wire_header h;
    h.magic = (uint32_t)get_le(in, 4);
    h.op = (uint16_t)get_le(in + 4, 2);
    h.dtype = (uint16_t)get_le(in + 6, 2);
    h.seq = get_le(in + 8, 8);
    h.op_bytes = get_le(in + 16, 8);
    h.payload_bytes = get_le(in + 24, 8);
    return h;
}

/* Shut every socket down (wakes a poll blocked on them, tells the peers). Thread-safe:
 * the fds stay open until destroy. */
static void shutdown_sockets(tcp_comm *t) {
    for (int j = 0; j < t->base.world; j++)
        if (t->fds[j] >= 0)
            shutdown(t->fds[j], SHUT_RDWR);
}

/* Record a communication failure: the comm is unusable after it. */
static int comm_fail(tcp_comm *t, au_err *err, const char *op_name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int comm_fail(tcp_comm *t, au_err *err, const char *op_name, const char *fmt, ...) {
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    int expected = COMM_OK;
    if (atomic_compare_exchange_strong(&t->state, &expected, COMM_FAILED)) {
        snprintf(t->failure, sizeof t->failure, "%s: %s", op_name, detail);
        shutdown_sockets(t);
    } else if (expected == COMM_ABORTED) {
        return au_errf(err, AU_ECOMM, "comm tcp (rank %d of %d): %s: aborted", t->base.rank, t->base.world,
                       op_name);
    }
    return au_errf(err, AU_ECOMM, "comm tcp (rank %d of %d): %s: %s", t->base.rank, t->base.world, op_name,
                   detail);
}

/* AU_ECOMM when the comm was aborted or failed before this op. */
static int comm_check_usable(tcp_comm *t, const char *op_name, au_err *err) {
    int state = atomic_load(&t->state);
    if (state == COMM_ABORTED)
        return au_errf(err, AU_ECOMM, "comm tcp (rank %d of %d): %s: the comm was aborted", t->base.rank,
                       t->base.world, op_name);
    if (state == COMM_FAILED)
        return au_errf(err, AU_ECOMM, "comm tcp (rank %d of %d): %s: the comm failed earlier (%s)",
                       t->base.rank, t->base.world, op_name, t->failure);
    return 0;
}

static int xfer_pending(const peer_xfer *x) {
    return x->send_done < WIRE_HEADER_BYTES + x->send_bytes ||
           x->recv_done < WIRE_HEADER_BYTES + x->recv_bytes;
}

/* Why a socket call to peer j failed, as a sentence. */
static int socket_error(tcp_comm *t, au_err *err, const char *op_name, int j, const char *call, int errnum) {
    if (errnum == EPIPE || errnum == ECONNRESET)
        return comm_fail(t, err, op_name, "rank %d closed the connection (%s: %s)", j, call,
                         strerror(errnum));
    return comm_fail(t, err, op_name, "%s to rank %d failed: %s", call, j, strerror(errnum));
}

/* Send what the socket takes of header and payload. 1 = progress, 0 = none, <0 = error. */
static int xfer_send(tcp_comm *t, int j, const char *op_name, au_err *err) {
    peer_xfer *x = &t->xfers[j];
    struct iovec iov[2];
    int n_iov = 0;
    if (x->send_done < WIRE_HEADER_BYTES) {
        iov[n_iov++] = (struct iovec){x->send_head + x->send_done, WIRE_HEADER_BYTES - x->send_done};
        if (x->send_bytes)
            iov[n_iov++] = (struct iovec){(void *)x->send_data, x->send_bytes};
    } else {
        size_t sent = x->send_done - WIRE_HEADER_BYTES;
        iov[n_iov++] = (struct iovec){(void *)(x->send_data + sent), x->send_bytes - sent};
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
    ssize_t n = sendmsg(t->fds[j], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return socket_error(t, err, op_name, j, "send", errno);
    }
    x->send_done += (size_t)n;
    return n > 0;
}

/* The header peer j sent must describe the op this rank runs. */
static int check_header(tcp_comm *t, int j, const char *op_name, const wire_header *want, au_err *err) {
    wire_header got = header_decode(t->xfers[j].recv_head);
    if (got.magic != WIRE_MAGIC)
        return comm_fail(t, err, op_name, "rank %d sent bytes that are not a comm message (magic %08x)", j,
                         (unsigned)got.magic);
    if (got.op != want->op || got.dtype != want->dtype || got.seq != want->seq ||
        got.op_bytes != want->op_bytes)
        return comm_fail(
            t, err, op_name,
            "rank %d called %s (op #%llu, %s, %llu bytes) while this rank called %s (op #%llu, %s, "
            "%llu bytes): every rank must call the same ops in the same order with the same shapes",
            j, wire_op_name(got.op), (unsigned long long)got.seq, dtype_name_or_unknown(got.dtype),
            (unsigned long long)got.op_bytes, wire_op_name(want->op), (unsigned long long)want->seq,
            dtype_name_or_unknown(want->dtype), (unsigned long long)want->op_bytes);
    if (got.payload_bytes != t->xfers[j].recv_bytes)
        return comm_fail(t, err, op_name, "rank %d sends %llu bytes where %zu were expected", j,
                         (unsigned long long)got.payload_bytes, t->xfers[j].recv_bytes);
    return 0;
}

/* Read what has arrived from peer j. 1 = progress, 0 = none, <0 = error. */
static int xfer_recv(tcp_comm *t, int j, const char *op_name, const wire_header *want, au_err *err) {
    peer_xfer *x = &t->xfers[j];
    int progressed = 0;
    while (x->recv_done < WIRE_HEADER_BYTES + x->recv_bytes) {
        uint8_t *dst;
        size_t room;
        if (x->recv_done < WIRE_HEADER_BYTES) {
            dst = x->recv_head + x->recv_done;
            room = WIRE_HEADER_BYTES - x->recv_done;
        } else {
            size_t got = x->recv_done - WIRE_HEADER_BYTES;
            dst = x->recv_data + got;
            room = x->recv_bytes - got;
        }
        ssize_t n = recv(t->fds[j], dst, room, MSG_DONTWAIT);
        if (n == 0) {
            if (atomic_load(&t->state) == COMM_ABORTED)
                return comm_fail(t, err, op_name, "aborted");
            return comm_fail(t, err, op_name, "rank %d closed the connection (received %zu of %zu bytes)", j,
                             x->recv_done, WIRE_HEADER_BYTES + x->recv_bytes);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return progressed;
            return socket_error(t, err, op_name, j, "recv", errno);
        }
        int header_was_partial = x->recv_done < WIRE_HEADER_BYTES;
        x->recv_done += (size_t)n;
        progressed = 1;
        if (header_was_partial && x->recv_done == WIRE_HEADER_BYTES) {
            int rc = check_header(t, j, op_name, want, err);
            if (rc)
                return rc;
        }
    }
    return progressed;
}

/* Run the transfers set up in t->xfers (every peer) to completion. `want` is the header
 * every peer must send (payload_bytes is per peer and checked against recv_bytes). */
static int exchange(tcp_comm *t, wire_op op, au_dtype dtype, uint64_t op_bytes, const char *op_name,
                    au_err *err) {
    au_comm *c = &t->base;
    wire_header want = {WIRE_MAGIC, (uint16_t)op, (uint16_t)dtype, t->seq++, op_bytes, 0};
    double start_s = now_seconds();
    for (int j = 0; j < c->world; j++) {
        if (j == c->rank)
            continue;
        peer_xfer *x = &t->xfers[j];
        wire_header h = want;
        h.payload_bytes = x->send_bytes;
        header_encode(x->send_head, &h);
        x->send_done = x->recv_done = 0;
        x->last_progress_s = start_s;
    }
    /* headers go out before anything is read, so a peer running another op learns which */
    for (int j = 0; j < c->world; j++) {
        if (j == c->rank)
            continue;
        int rc = xfer_send(t, j, op_name, err);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        int rc = comm_check_usable(t, op_name, err);
        if (rc)
            return rc;
        int n_poll = 0;
        double now_s = now_seconds(), wait_s = -1;
        for (int j = 0; j < c->world; j++) {
            peer_xfer *x = &t->xfers[j];
            if (j == c->rank || !xfer_pending(x))
                continue;
            double left_s = x->last_progress_s + c->timeout_ms * 1e-3 - now_s;
            if (left_s <= 0)
                return comm_fail(
                    t, err, op_name,
                    "rank %d made no progress for %d ms (sent %zu of %zu bytes, received %zu of %zu)", j,
                    c->timeout_ms, x->send_done, WIRE_HEADER_BYTES + x->send_bytes, x->recv_done,
                    WIRE_HEADER_BYTES + x->recv_bytes);
            if (wait_s < 0 || left_s < wait_s)
                wait_s = left_s;
            short events = 0;
            if (x->send_done < WIRE_HEADER_BYTES + x->send_bytes)
                events |= POLLOUT;
            if (x->recv_done < WIRE_HEADER_BYTES + x->recv_bytes)
                events |= POLLIN;
            t->pollfds[n_poll] = (struct pollfd){.fd = t->fds[j], .events = events};
            t->poll_peer[n_poll++] = j;
        }
        if (n_poll == 0)
            return 0;
        int ready = poll(t->pollfds, (nfds_t)n_poll, (int)(wait_s * 1000) + 1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return comm_fail(t, err, op_name, "poll: %s", strerror(errno));
        }
        now_s = now_seconds();
        for (int i = 0; i < n_poll; i++) {
            short revents = t->pollfds[i].revents;
            if (!revents)
                continue;
            int j = t->poll_peer[i];
            peer_xfer *x = &t->xfers[j];
            int progressed = 0;
            /* POLLHUP/POLLERR: the call that follows reports what happened */
            if (t->pollfds[i].events & POLLOUT) {
                rc = xfer_send(t, j, op_name, err);
                if (rc < 0)
                    return rc;
                progressed |= rc;
            }
            if (t->pollfds[i].events & POLLIN && (revents & (POLLIN | POLLERR | POLLHUP))) {
                rc = xfer_recv(t, j, op_name, &want, err);
                if (rc < 0)
                    return rc;
                progressed |= rc;
            }
            if (progressed)
                x->last_progress_s = now_s;
        }
    }
}

/* Host memory of at least `bytes`, kept for the next ops. */
static int stage_reserve(tcp_comm *t, size_t bytes, const char *op_name, au_err *err) {
    if (bytes <= t->stage_cap)
        return 0;
    free(t->stage);
    t->stage = malloc(bytes);
    t->stage_cap = t->stage ? bytes : 0;
    if (!t->stage)
        return au_errf(err, AU_ENOMEM, "comm tcp: %s: no host memory for %zu staging bytes", op_name, bytes);
    return 0;
}

static size_t align_up(size_t n) {
    return (n + STAGE_ALIGN - 1) / STAGE_ALIGN * STAGE_ALIGN;
}

static int check_dtype(const au_tensor *t, const char *op_name, const char *arg, au_err *err) {
    if (t->dtype == AU_F8_E4M3)
        return au_errf(err, AU_EINVAL, "comm tcp: %s: %s is f8_e4m3 (its per-row scales would not follow)",
                       op_name, arg);
    if ((int)t->dtype < 0 || t->dtype >= AU_DTYPE_COUNT)
        return au_errf(err, AU_EINVAL, "comm tcp: %s: %s has an unknown dtype %d", op_name, arg,
                       (int)t->dtype);
    return 0;
}

static void copy_bytes(void *dst, const void *src, size_t n) {
    if (n)
        memcpy(dst, src, n);
}

static int tcp_all_gather(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err) {
    tcp_comm *t = (tcp_comm *)c;
    const char *op = "all_gather";
    int rc;
    if ((rc = be_check_tensor("comm all_gather", "in", in, err)) ||
        (rc = be_check_tensor("comm all_gather", "out", out, err)) || (rc = check_dtype(in, op, "in", err)))
        return rc;
    char in_shape[96], out_shape[96];
    int shape_ok =
        out->dtype == in->dtype && out->ndim == in->ndim && out->shape[0] == (int64_t)c->world * in->shape[0];
    for (int d = 1; shape_ok && d < in->ndim; d++)
        shape_ok = out->shape[d] == in->shape[d];
    if (!shape_ok)
        return au_errf(err, AU_EINVAL, "comm tcp: all_gather: out %s must be in %s with dim 0 times %d",
                       au_shape_str(out, out_shape, sizeof out_shape),
                       au_shape_str(in, in_shape, sizeof in_shape), c->world);
    if ((rc = comm_check_usable(t, op, err)))
        return rc;
    size_t block = au_nbytes(in);
    const uint8_t *in_host = in->data;
    uint8_t *out_host = out->data;
    if (!t->host_memory) {
        if ((rc = stage_reserve(t, align_up(block) + block * (size_t)c->world, op, err)))
            return rc;
        if ((rc = be_download(c->be, t->stage, in, err)))
            return au_err_prefix(err, "comm tcp: all_gather");
        in_host = t->stage;
        out_host = t->stage + align_up(block);
    }
    for (int j = 0; j < c->world; j++) {
        t->xfers[j] = (peer_xfer){.send_data = in_host,
                                  .send_bytes = block,
                                  .recv_data = out_host + block * (size_t)j,
                                  .recv_bytes = block};
    }
    copy_bytes(out_host + block * (size_t)c->rank, in_host, block);
    if ((rc = exchange(t, WIRE_ALL_GATHER, in->dtype, block, op, err)))
        return rc;
    if (!t->host_memory && (rc = be_upload(c->be, out, out_host, err)))
        return au_err_prefix(err, "comm tcp: all_gather");
    return 0;
}

static int tcp_all_to_all(au_comm *c, au_tensor *out, const au_tensor *in, au_err *err) {
    tcp_comm *t = (tcp_comm *)c;
    const char *op = "all_to_all";
    int rc;
    if ((rc = be_check_tensor("comm all_to_all", "in", in, err)) ||
        (rc = be_check_tensor("comm all_to_all", "out", out, err)) || (rc = check_dtype(in, op, "in", err)))
        return rc;
    char in_shape[96], out_shape[96];
    if (out->dtype != in->dtype || !au_same_shape(out, in) || in->shape[0] != c->world)
        return au_errf(err, AU_EINVAL,
                       "comm tcp: all_to_all: in %s and out %s must both be [%d, ...] of one dtype",
                       au_shape_str(in, in_shape, sizeof in_shape),
                       au_shape_str(out, out_shape, sizeof out_shape), c->world);
    if ((rc = comm_check_usable(t, op, err)))
        return rc;
    size_t total = au_nbytes(in), block = total / (size_t)c->world;
    const uint8_t *in_host = in->data;
    uint8_t *out_host = out->data;
    if (!t->host_memory) {
        if ((rc = stage_reserve(t, align_up(total) + total, op, err)))
            return rc;
        if ((rc = be_download(c->be, t->stage, in, err)))
            return au_err_prefix(err, "comm tcp: all_to_all");
        in_host = t->stage;
        out_host = t->stage + align_up(total);
    }
    for (int j = 0; j < c->world; j++) {
        size_t at = block * (size_t)j;
        t->xfers[j] = (peer_xfer){
            .send_data = in_host + at, .send_bytes = block, .recv_data = out_host + at, .recv_bytes = block};
    }
    copy_bytes(out_host + block * (size_t)c->rank, in_host + block * (size_t)c->rank, block);
    if ((rc = exchange(t, WIRE_ALL_TO_ALL, in->dtype, total, op, err)))
        return rc;
    if (!t->host_memory && (rc = be_upload(c->be, out, out_host, err)))
        return au_err_prefix(err, "comm tcp: all_to_all");
    return 0;
}

/* Chunk r of n elements split over world ranks: the first n % world chunks get one more. */
static void chunk_range(int64_t n, int world, int r, int64_t *start, int64_t *len) {
    int64_t base = n / world, extra = n % world;
    *start = base * r + (r < extra ? r : extra);
    *len = base + (r < extra ? 1 : 0);
}

static int tcp_all_reduce_sum(au_comm *c, au_tensor *buf, au_err *err) {
    tcp_comm *t = (tcp_comm *)c;
    const char *op = "all_reduce_sum";
    int rc;
    if ((rc = be_check_tensor("comm all_reduce_sum", "buf", buf, err)) ||
        (rc = check_dtype(buf, op, "buf", err)))
        return rc;
    if (buf->dtype != AU_F32)
        return au_errf(err, AU_EUNSUPPORTED,
                       "comm tcp: all_reduce_sum: buf is %s, the tcp transport sums f32 only",
                       au_dtype_name(buf->dtype));
    if ((rc = comm_check_usable(t, op, err)))
        return rc;
    int64_t n = au_numel(buf), mine_start, mine_len;
    size_t total = au_nbytes(buf);
    chunk_range(n, c->world, c->rank, &mine_start, &mine_len);
    /* scratch: slot j holds peer j's copy of this rank's chunk */
    size_t slot = (size_t)mine_len * sizeof(float), scratch_at = t->host_memory ? 0 : align_up(total);
    if ((rc = stage_reserve(t, scratch_at + slot * (size_t)c->world, op, err)))
        return rc;
    float *host = buf->data;
    if (!t->host_memory) {
        if ((rc = be_download(c->be, t->stage, buf, err)))
            return au_err_prefix(err, "comm tcp: all_reduce_sum");
        host = (float *)t->stage;
    }
    float *scratch = (float *)(t->stage + scratch_at);
    for (int j = 0; j < c->world; j++) {
        int64_t start, len;
        chunk_range(n, c->world, j, &start, &len);
        t->xfers[j] = (peer_xfer){.send_data = (const uint8_t *)(host + start),
                                  .send_bytes = (size_t)len * sizeof(float),
                                  .recv_data = (uint8_t *)(scratch + mine_len * j),
                                  .recv_bytes = slot};
    }
    if ((rc = exchange(t, WIRE_REDUCE_SCATTER, AU_F32, total, op, err)))
        return rc;
    /* sum in rank order: ((x0 + x1) + x2) + ..., the same expression on whichever rank owns the chunk */
    float *mine = host + mine_start;
    copy_bytes(scratch + mine_len * c->rank, mine, slot);
    for (int64_t i = 0; i < mine_len; i++) {
        float acc = scratch[i];
        for (int r = 1; r < c->world; r++)
            acc += scratch[mine_len * r + i];
        mine[i] = acc;
    }
    for (int j = 0; j < c->world; j++) {
        int64_t start, len;
        chunk_range(n, c->world, j, &start, &len);
        t->xfers[j] = (peer_xfer){.send_data = (const uint8_t *)mine,
                                  .send_bytes = slot,
                                  .recv_data = (uint8_t *)(host + start),
                                  .recv_bytes = (size_t)len * sizeof(float)};
    }
    if ((rc = exchange(t, WIRE_REDUCE_GATHER, AU_F32, total, op, err)))
        return rc;
    if (!t->host_memory && (rc = be_upload(c->be, buf, host, err)))
        return au_err_prefix(err, "comm tcp: all_reduce_sum");
    return 0;
}

/* Ops run to completion when called: nothing is pending, only a failure to report. */
static int tcp_wait(au_comm *c, au_err *err) {
    return comm_check_usable((tcp_comm *)c, "wait", err);
}

static void tcp_abort(au_comm *c) {
    tcp_comm *t = (tcp_comm *)c;
    int expected = COMM_OK;
    if (atomic_compare_exchange_strong(&t->state, &expected, COMM_ABORTED))
        shutdown_sockets(t);
}

static void tcp_free(tcp_comm *t) {
    free(t->fds);
    free(t->xfers);
    free(t->pollfds);
    free(t->poll_peer);
    free(t->stage);
    free(t);
}

static void tcp_destroy(au_comm *c) {
    if (!c)
        return;
    tcp_comm *t = (tcp_comm *)c;
    for (int j = 0; j < c->world; j++)
        if (t->fds[j] >= 0)
            close(t->fds[j]);
    tcp_free(t);
}

static const au_comm_ops tcp_ops = {
    .name = "tcp",
    .all_gather = tcp_all_gather,
    .all_to_all = tcp_all_to_all,
    .all_reduce_sum = tcp_all_reduce_sum,
    .wait = tcp_wait,
    .abort = tcp_abort,
    .destroy = tcp_destroy,
};

/* Peer j's socket: a stream socket, made non-blocking, without Nagle's delay when TCP
 * (small ops such as the per-step stop flag would otherwise wait for delayed ACKs). */
static int socket_prepare(int fd, int j, au_err *err) {
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return au_errf(err, AU_EINVAL, "comm tcp: the socket of rank %d (fd %d) is not usable: %s", j, fd,
                       strerror(errno));
    if (type != SOCK_STREAM)
        return au_errf(err, AU_EINVAL, "comm tcp: the socket of rank %d (fd %d) is not a stream socket", j,
                       fd);
    struct sockaddr_storage addr;
    len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return au_errf(err, AU_EIO, "comm tcp: getsockname of rank %d's socket: %s", j, strerror(errno));
    int one = 1;
    if ((addr.ss_family == AF_INET || addr.ss_family == AF_INET6) &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        return au_errf(err, AU_EIO, "comm tcp: TCP_NODELAY on rank %d's socket: %s", j, strerror(errno));
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return au_errf(err, AU_EIO, "comm tcp: making rank %d's socket non-blocking: %s", j, strerror(errno));
    return 0;
}

static void close_peer_fds(int rank, int world, const int *fds) {
    for (int j = 0; j < world; j++)
        if (j != rank && fds[j] >= 0)
            close(fds[j]);
}

int comm_tcp_create(au_comm **out, au_backend *be, int rank, int world, const int *fds, int timeout_ms,
                    au_err *err) {
    *out = NULL;
    int rc = 0;
    if (world < 1 || rank < 0 || rank >= world) /* the sockets are not taken: how many there are is unknown */
        return au_errf(err, AU_EINVAL, "comm tcp: rank %d of world %d", rank, world);
    if (!be || timeout_ms <= 0 || (world > 1 && !fds)) {
        rc = au_errf(err, AU_EINVAL, "comm tcp: %s",
                     !be               ? "no backend"
                     : timeout_ms <= 0 ? "timeout_ms must be > 0"
                                       : "no sockets");
        if (fds)
            close_peer_fds(rank, world, fds);
        return rc;
    }
    for (int j = 0; j < world && rc == 0; j++)
        if (j != rank && fds[j] < 0)
            rc = au_errf(err, AU_EINVAL, "comm tcp: no socket for rank %d", j);
    for (int j = 0; j < world && rc == 0; j++)
        if (j != rank)
            rc = socket_prepare(fds[j], j, err);
    tcp_comm *t = NULL;
    if (rc == 0 && !(t = calloc(1, sizeof *t)))
        rc = au_errf(err, AU_ENOMEM, "comm tcp: out of memory");
    if (rc == 0) {
        t->fds = malloc(sizeof *t->fds * (size_t)world);
        t->xfers = calloc((size_t)world, sizeof *t->xfers);
        t->pollfds = calloc((size_t)world, sizeof *t->pollfds);
        t->poll_peer = calloc((size_t)world, sizeof *t->poll_peer);
        if (!t->fds || !t->xfers || !t->pollfds || !t->poll_peer)
            rc = au_errf(err, AU_ENOMEM, "comm tcp: out of memory");
    }
    if (rc) {
        if (t)
            tcp_free(t);
        if (fds)
            close_peer_fds(rank, world, fds);
        return rc;
    }
    for (int j = 0; j < world; j++)
        t->fds[j] = j == rank ? -1 : fds[j];
    t->base = (au_comm){
        .ops = &tcp_ops, .rank = rank, .world = world, .be = be, .timeout_ms = timeout_ms, .impl = t};
    atomic_init(&t->state, COMM_OK);
    t->host_memory = strcmp(be->ops->name, "cpu") == 0;
    *out = &t->base;
    return 0;
}
