/* serve.c - `auteur serve` and `auteur migrate`: start-up, signal handling and shutdown.
 *
 * Start-up: create DATA and DATA/videos, take an exclusive lock on DATA/auteur.lock (one
 * server per data directory, which is what makes start-up recovery safe), open the store
 * (migrating it), requeue the jobs a previous process left in progress, remove partial
 * files, load the engine (a failure leaves the service up without one: 503 on create,
 * NOT_READY on /health), with --world-size 2 listen for the worker on the rendezvous address
 * (cluster.h), start the dispatcher and the /health runner (its start-up run goes
 * on while the server listens; its GPU benchmarks wait whenever jobs are queued or
 * generating), then listen.
 * Signals: SIGTERM and SIGINT run a handler that writes the signal number into a self-pipe,
 * whichever thread they land on (libraries may start threads before main, so masks cannot
 * be relied on); the main thread sleeps on the pipe's read end. Shutdown: stop accepting connections, let the
 * running job finish within
 * --shutdown-grace seconds or put it back in the queue, tell the worker, close everything, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "commands.h"
#include "health.h"
#include "http.h"

static int signal_pipe[2] = {-1, -1};


static void on_stop_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(signal_pipe[1], &b, 1) < 0) {
        /* the pipe is full: a stop is already pending */
    }
    errno = saved;
}

static int install_signals(au_err *err) {
    if (pipe(signal_pipe) != 0)
        return au_errf(err, AU_EIO, "signal pipe: %s", strerror(errno));
    fcntl(signal_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(signal_pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
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

/* Block until SIGTERM or SIGINT; returns the signal. */
static int wait_stop_signal(void) {
    unsigned char b = 0;
    for (;;) {
        ssize_t n = read(signal_pipe[0], &b, 1);
        if (n == 1)
            return b;
        if (n < 0 && errno != EINTR)
            return SIGTERM; /* cannot wait any more: behave as if told to stop */
    }
}

/* mkdir -p */
static int make_dirs(const char *path, au_err *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return au_errf(err, AU_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return au_errf(err, AU_EIO, "creating %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return au_errf(err, AU_EIO, "%s is not a directory", path);
    return 0;
}

static int open_data_store(const char *data_dir, store **st, au_err *err) {
    char db[PATH_MAX + 16];
    int rc = make_dirs(data_dir, err);
    if (rc)
        return rc;
    snprintf(db, sizeof db, "%s/auteur.db", data_dir);
    return store_open(st, db, err);
}

int cmd_migrate(int argc, char **argv) {
    data_config c;
    au_err err;
    int rc = config_migrate(&c, argc, argv, &err);
    if (rc == CFG_EXIT)
        return 0;
    if (rc == CFG_USAGE) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    store *st;
    if (open_data_store(c.data_dir, &st, &err) != 0) {
        fprintf(stderr, "auteur migrate: %s\n", err.msg);
        return 1;
    }
    int before, after;
    store_schema_versions(st, &before, &after);
    store_close(st);
    if (before == after)
        printf("auteur: database %s/auteur.db is up to date (schema version %d)\n", c.data_dir, after);
    else
        printf("auteur: database %s/auteur.db migrated from schema version %d to %d\n", c.data_dir, before,
               after);
    return 0;
}

/* One server per data directory; the lock goes when the process does, however it ends. */
static int lock_data_dir(const char *data_dir, int *fd_out, au_err *err) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/auteur.lock", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return au_errf(err, AU_EIO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return au_errf(err, AU_EBUSY, "another auteur serve is using %s", data_dir);
        return au_errf(err, AU_EIO, "locking %s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

static void make_owner(char *out, size_t cap) {
    char host[128] = "host";
    unsigned r = 0;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (unsigned)time(NULL);
    snprintf(out, cap, "%s:%d:%08x", host, (int)getpid(), r);
}

/* Everything up to listening; on failure the caller tears down what exists. */
static int start(app *a, const serve_config *cfg, int *lock_fd, au_err *err) {
    int rc;
    a->cfg = cfg;
    a->started_at = (int64_t)time(NULL);
    if ((rc = make_dirs(cfg->data_dir, err)) || (rc = lock_data_dir(cfg->data_dir, lock_fd, err)))
        return rc;
    snprintf(a->videos_dir, sizeof a->videos_dir, "%s/videos", cfg->data_dir);
    if ((rc = make_dirs(a->videos_dir, err)) || (rc = open_data_store(cfg->data_dir, &a->st, err)))
        return rc;
    int before, after, nr = 0, nf = 0, parts = 0;
    store_schema_versions(a->st, &before, &after);
    if (before != after)
        fprintf(stderr, "auteur: database migrated from schema version %d to %d\n", before, after);
    if ((rc = store_recover(a->st, (int64_t)time(NULL), STORE_MAX_ATTEMPTS, &nr, &nf, err)) ||
        (rc = dispatch_clean_partials(a->videos_dir, &parts, err)))
        return rc;
    if (nr || nf || parts)
        fprintf(stderr,
                "auteur: recovered from an earlier stop: %d job(s) requeued, %d failed, %d partial file(s) "
                "removed\n",
                nr, nf, parts);
    if (metrics_create(&a->met) != 0)
        return au_errf(err, AU_ENOMEM, "metrics: out of memory");
    au_pipeline_opts po = {.device = cfg->device, .n_threads = cfg->threads, .precision = cfg->precision};
    au_err perr;
    if (pipeline_open(&a->pipe, cfg->model_dir, &po, &perr) != 0) {
        a->pipe = NULL;
        snprintf(a->model_error, sizeof a->model_error, "%s", perr.msg);
        fprintf(stderr, "auteur: no engine, serving without one (503 on create): %s\n", a->model_error);
        return 0;
    }
    a->mi = pipeline_model_info(a->pipe);
    fprintf(stderr, "auteur: model %s loaded from %s on %s\n", a->mi->name, cfg->model_dir,
            pipeline_backend_name(a->pipe));
    if (cfg->cluster.world_size > 1) {
        cluster_opts co = {.world_size = cfg->cluster.world_size,
                           .rendezvous = cfg->cluster.rendezvous,
                           .token = cfg->cluster.token,
                           .comm = cfg->comm,
                           .heartbeat_timeout_s = cfg->cluster.heartbeat_timeout_seconds,
                           .pipe = a->pipe};
        if ((rc = cluster_start(&a->cluster, &co, err)))
            return rc;
    }
    char owner[256];
    make_owner(owner, sizeof owner);
    dispatch_opts dopts = {.st = a->st,
                           .pipe = a->pipe,
                           .met = a->met,
                           .videos_dir = a->videos_dir,
                           .owner = owner,
                           .lease_seconds = cfg->lease_seconds,
                           .max_attempts = STORE_MAX_ATTEMPTS,
                           .retention_hours = cfg->retention_hours,
                           .hold = &a->gpu_measuring,
                           .cluster = a->cluster,
                           .parallel = cfg->parallel};
    return dispatch_start(&a->disp, &dopts, err);
}

/* health_busy_fn: jobs are queued or generating (nothing generates without an engine). */
static int jobs_busy(void *user, char *why, size_t cap) {
    app *a = user;
    int counts[4];
    au_err err;
    if (store_counts(a->st, counts, &err) != 0) {
        snprintf(why, cap, "%s", err.msg);
        return -1;
    }
    int n = counts[API_QUEUED] + counts[API_IN_PROGRESS];
    if (!a->disp || n == 0)
        return 0;
    snprintf(why, cap, "%d job(s) queued or generating", n);
    return 1;
}

static int start_health(app *a, const health_thresholds *t, health_service **out, au_err *err) {
    health_service_opts o = {
        .ctx = {.data_dir = a->cfg->data_dir,
                .model_dir = a->cfg->model_dir,
                .engine_loaded = a->pipe != NULL,
                .model_error = a->model_error,
                .backend = a->pipe ? pipeline_backend_name(a->pipe) : NULL,
                .precision =
                    a->pipe ? health_precision_of(pipeline_backend_name(a->pipe), a->cfg->precision) : NULL},
        .thresholds = *t,
        .busy = jobs_busy,
        .busy_user = a,
        .gpu_device = 0,
        .keep_runs = HEALTH_KEEP_RUNS,
        .measuring = &a->gpu_measuring,
        .cluster_ops = a->cluster ? &cluster_health_ops : NULL,
        .cluster = a->cluster,
    };
    char db[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/auteur.db", a->cfg->data_dir);
    o.db_path = db;
    return health_service_start(out, &o, err);
}

int cmd_serve(int argc, char **argv) {
    serve_config cfg;
    au_err err;
    int rc = config_serve(&cfg, argc, argv, &err);
    if (rc == CFG_EXIT)
        return 0;
    if (rc == CFG_USAGE) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    health_thresholds thresholds;
    health_thresholds_default(&thresholds);
    if (cfg.health_thresholds[0] && health_thresholds_load(&thresholds, cfg.health_thresholds, &err) != 0) {
        fprintf(stderr, "auteur serve: --health-thresholds: %s\n", err.msg);
        return 2;
    }
    app a;
    memset(&a, 0, sizeof a);
    atomic_init(&a.gpu_measuring, 0);
    int lock_fd = -1, port = 0, exit_code = 0;
    http_server *http = NULL;
    int ok = install_signals(&err) == 0 && start(&a, &cfg, &lock_fd, &err) == 0 &&
             start_health(&a, &thresholds, &a.health, &err) == 0;
    if (!ok || http_start(&http, &a, cfg.host, cfg.port, cfg.http_threads, &port, &err) != 0) {
        fprintf(stderr, "auteur serve: %s\n", err.msg);
        exit_code = 1;
        goto shutdown;
    }
    printf("auteur: listening on http://%s:%d\n", strchr(cfg.host, ':') ? "[::]" : cfg.host, port);
    fflush(stdout);

    int sig = wait_stop_signal();
    fprintf(stderr, "auteur: %s received, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
shutdown:
    http_stop(http);
    health_service_stop(a.health);
    a.health = NULL;
    if (a.disp && dispatch_stop(a.disp, cfg.shutdown_grace_seconds) != 0) {
        /* the engine is still inside a step: its job is back in the queue; leave now */
        fprintf(stderr, "auteur: stopped\n");
        return exit_code;
    }
    cluster_stop(a.cluster);
    pipeline_close(a.pipe);
    store_close(a.st);
    metrics_destroy(a.met);
    if (lock_fd >= 0)
        close(lock_fd);
    if (exit_code == 0)
        fprintf(stderr, "auteur: stopped\n");
    return exit_code;
}
