/* cmd_worker.c - `auteur worker`: rank 1 of a two-node engine (worker.h runs one session).
 *
 * Start-up: load the model (the same folder and precision as rank 0: the ranks compare a
 * fingerprint of it), gather this node's hardware report for rank 0's /health, then connect to
 * rank 0 and follow it. When rank 0 is lost, shuts down or cannot be reached, connect again
 * after a pause that doubles from 0.5 s up to --reconnect-seconds (reset by every session that
 * got through the handshake). Exit 0 on SIGTERM or SIGINT (after the running job), 1 when rank
 * 0 refuses this worker (token, versions, model, world size, rank: fixing it takes an operator)
 * or the model does not load, 2 on a usage error.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "health.h"
#include "worker.h"

#define FIRST_PAUSE_S 0.5

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(stop_pipe[1], &b, 1) < 0) {
        /* the pipe is full: a stop is already pending */
    }
    errno = saved;
}

static int install_signals(au_err *err) {
    if (pipe2(stop_pipe, O_CLOEXEC) != 0)
        return au_errf(err, AU_EIO, "signal pipe: %s", strerror(errno));
    fcntl(stop_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return au_errf(err, AU_EIO, "installing signal handlers: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Sleep up to seconds; 1 when a stop signal came meanwhile. */
static int pause_or_stop(double seconds) {
    struct pollfd pf = {.fd = stop_pipe[0], .events = POLLIN};
    int r;
    while ((r = poll(&pf, 1, (int)(seconds * 1000))) < 0 && errno == EINTR) {
    }
    return r > 0;
}

static int run(const worker_config *cfg, au_pipeline *pipe) {
    au_err err;
    char fingerprint[65];
    if (pipeline_model_fingerprint(pipe, fingerprint, &err) != 0) {
        fprintf(stderr, "auteur worker: %s\n", err.msg);
        return 1;
    }
    json_t *hardware = health_local_hardware_json(pipeline_backend_name(pipe), (int)cfg->precision);
    worker_opts o = {.pipe = pipe,
                     .cluster = &cfg->cluster,
                     .fingerprint = fingerprint,
                     .hardware = hardware,
                     .stop_fd = stop_pipe[0]};
    double pause = FIRST_PAUSE_S;
    int exit_code = 0;
    for (;;) {
        int joined = 0;
        int r = worker_session(&o, &joined, &err);
        if (r == WORKER_STOP)
            break;
        if (r == WORKER_REFUSED) {
            fprintf(stderr, "auteur worker: refused: %s\n", err.msg);
            exit_code = 1;
            break;
        }
        if (joined)
            pause = FIRST_PAUSE_S;
        fprintf(stderr, "auteur worker: %s; connecting again in %.1f s\n", err.msg, pause);
        if (pause_or_stop(pause))
            break;
        pause = pause * 2 < cfg->reconnect_seconds ? pause * 2 : cfg->reconnect_seconds;
    }
    json_decref(hardware);
    return exit_code;
}

int cmd_worker(int argc, char **argv) {
    worker_config cfg;
    au_err err;
    int rc = config_worker(&cfg, argc, argv, &err);
    if (rc == CFG_EXIT)
        return 0;
    if (rc == CFG_USAGE) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    if (install_signals(&err) != 0) {
        fprintf(stderr, "auteur worker: %s\n", err.msg);
        return 1;
    }
    au_pipeline *pipe;
    au_pipeline_opts po = {.device = cfg.device, .n_threads = cfg.threads, .precision = cfg.precision};
    if (pipeline_open(&pipe, cfg.model_dir, &po, &err) != 0) {
        fprintf(stderr, "auteur worker: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "auteur worker: model %s loaded from %s on %s; rank %d of %d, rank 0 at %s\n",
            pipeline_model_info(pipe)->name, cfg.model_dir, pipeline_backend_name(pipe), cfg.cluster.rank,
            cfg.cluster.world_size, cfg.cluster.rendezvous);
    int exit_code = run(&cfg, pipe);
    pipeline_close(pipe);
    if (exit_code == 0)
        fprintf(stderr, "auteur worker: stopped\n");
    return exit_code;
}
