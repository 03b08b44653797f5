/* health_service.c - the thread that runs the /health checks and the report built from its
 * last run (health.h).
 *
 * Runs are numbered as they are asked for: `requested` counts requests (the start-up run is
 * the first), `started` and `finished` follow. A request made while another waits to start
 * joins it; one made while a run measures asks for the next. The GPU benchmarks never overlap
 * a job: before each one the gate asks the busy callback (jobs queued or generating) and waits,
 * polling every GATE_POLL_MS, until the queue is empty; the wait shows in the report as
 * run.pending / run.waiting_for. The gate raises `measuring` before it looks at the queue and
 * lowers it while it waits, and the dispatcher claims no job while it is raised: flag first,
 * then the queue, on both sides, so a job and a benchmark never overlap. The comm benchmark
 * between the ranks passes the same gate.
 * With a cluster, the runner wakes every HEALTH_RANK_POLL_MS to compare the ranks joined with
 * those of the last run, and asks for a run when they differ; the report shows the other
 * ranks as the cluster knows them now, the rest as the last run found it.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "health.h"
#include "health_store.h"
#include "model.h"

#define GATE_POLL_MS 500

struct health_service {
    health_service_opts o;
    char data_dir[PATH_MAX], model_dir[PATH_MAX], model_error[512], backend[64], precision[32];
    char db_path[PATH_MAX];
    health_store *hs;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the runner: a request, or stop */
    pthread_cond_t done; /* waiters: a run finished, or stop */
    int stopping;
    uint64_t requested, started, finished;
    char waiting_for[256]; /* what the run in progress waits for, "" when it does not */
    json_t *last;          /* the last finished run, with its "id" */
    int world_size;        /* ranks configured: 1 without a cluster */
    int ranks_joined_run;  /* ranks joined when the last run started */
};


static double now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static struct timespec deadline_after(double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double whole = floor(seconds);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* hp_gate_fn: wait until no job is queued or generating. */
static int gate(void *user, char *reason, size_t cap) {
    health_service *s = user;
    for (;;) {
        char why[256] = "";
        if (s->o.measuring)
            atomic_store(s->o.measuring, 1);
        int busy = s->o.busy ? s->o.busy(s->o.busy_user, why, sizeof why) : 0;
        if (busy != 0 && s->o.measuring)
            atomic_store(s->o.measuring, 0);
        pthread_mutex_lock(&s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            snprintf(reason, cap, "the service is stopping");
            return 1;
        }
        if (busy <= 0) {
            s->waiting_for[0] = '\0';
            pthread_mutex_unlock(&s->mu);
            if (busy < 0) /* better unmeasured than beside a job */
                snprintf(reason, cap, "cannot tell whether a job is running: %s", why);
            return busy < 0;
        }
        snprintf(s->waiting_for, sizeof s->waiting_for, "%s", why);
        struct timespec ts = deadline_after(GATE_POLL_MS / 1000.0);
        pthread_cond_timedwait(&s->wake, &s->mu, &ts);
        pthread_mutex_unlock(&s->mu);
    }
}

#ifndef AU_HAVE_CUDA
/* health_gpu_probe_fn of a build without CUDA. */
static int no_cuda_probe(int device, const hp_thresholds *t, hp_gate_fn gate_fn, void *user,
                         hp_gpu_report *out, au_err *err) {
    hp_gpu_report_init(out, t, "no GPU: this build has no CUDA backend");
    return 0;
}
#endif

/* The entries of ranks 1.. as the cluster knows them now; NULL when out of memory. */
static json_t *peer_ranks_now(health_service *s) {
    json_t *a = json_array();
    for (int r = 1; a && r < s->world_size; r++) {
        json_t *hw = s->o.cluster_ops->rank_report(s->o.cluster, r);
        int rc = json_array_append_new(a, health_peer_rank_json(r, hw));
        json_decref(hw);
        if (rc != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* comm_allreduce: every configured rank joined, then past the gate, the cluster's
 * all-reduce benchmark. Reads run->peers (who is joined). */
static void check_comm(health_service *s, health_run *run, hp_check *c) {
    hp_check_init(c, "comm_allreduce", "GB/s", s->o.thresholds.comm_bus_bandwidth_gbs, 1);
    snprintf(c->detail, sizeof c->detail, "all-reduce bus bandwidth between the ranks");
    if (s->world_size == 1) {
        hp_check_skip(c, "single rank");
        return;
    }
    char missing[256] = "";
    size_t len = 0;
    for (int r = 1; r < s->world_size && len < sizeof missing; r++)
        if (!run->peers[r])
            len += (size_t)snprintf(missing + len, sizeof missing - len, "%srank %d missing", len ? ", " : "",
                                    r);
    if (missing[0]) {
        hp_check_fail(c, missing);
        return;
    }
    char stop[512] = "";
    int stopped = gate(s, stop, sizeof stop) != 0;
    double busbw = 0, seconds = 0;
    au_err e;
    int rc = stopped ? 0
                     : s->o.cluster_ops->comm_bench(s->o.cluster, HEALTH_COMM_BENCH_BYTES,
                                                    HEALTH_COMM_BENCH_ITERS, &busbw, &seconds, &e);
    if (s->o.measuring)
        atomic_store(s->o.measuring, 0);
    if (stopped) {
        hp_check_skip(c, stop);
        return;
    }
    const char *name = s->o.cluster_ops->comm_name(s->o.cluster);
    if (name && !name[0])
        name = NULL;
    snprintf(run->transport, sizeof run->transport, "%s", name ? name : "");
    snprintf(c->detail, sizeof c->detail, "%s all-reduce of %zu MiB, %d times in %.3g s, %d ranks",
             name ? name : "no comm", HEALTH_COMM_BENCH_BYTES >> 20, HEALTH_COMM_BENCH_ITERS, seconds,
             s->world_size);
    if (rc != 0) {
        hp_check_fail(c, e.msg);
        return;
    }
    hp_check_judge(c, busbw);
    len = strlen(c->reason);
    snprintf(c->reason + len, sizeof c->reason - len, " over %s", name ? name : "the comm");
}

static void check_database(health_service *s, hp_check *c) {
    double ms = 0;
    au_err e;
    hp_check_init(c, "database_writable", "ms", NAN, 0);
    snprintf(c->detail, sizeof c->detail, "one row of health_write_probe rewritten and committed");
    if (health_store_probe_write(s->hs, now_unix(), &ms, &e) != 0) {
        hp_check_fail(c, e.msg);
        return;
    }
    hp_check_judge(c, ms);
    snprintf(c->reason, sizeof c->reason, "a write committed in %.3g ms", ms);
}

static void check_disk(health_service *s, hp_check *c) {
    uint64_t free_b = 0, total_b = 0;
    au_err e;
    hp_check_init(c, "data_dir_free_space", "GB", s->o.thresholds.data_dir_min_free_gb, 1);
    if (health_probe_disk(s->data_dir, &free_b, &total_b, &e) != 0) {
        hp_check_fail(c, e.msg);
        return;
    }
    snprintf(c->detail, sizeof c->detail, "%.1f of %.1f GB free on the data directory's file system",
             free_b / 1e9, total_b / 1e9);
    hp_check_judge(c, free_b / 1e9);
}

static void check_model(health_service *s, hp_check *c) {
    const health_context *ctx = &s->o.ctx;
    au_manifest m;
    au_err e;
    hp_check_init(c, "model_files", "GB", NAN, 1);
    snprintf(c->detail, sizeof c->detail, "the files the model folder's auteur-model.json names");
    if (model_manifest_load(s->model_dir, &m, &e) != 0) {
        hp_check_fail(c, e.msg);
        return;
    }
    const char *paths[] = {m.tokenizer_path, m.text_encoder_path, m.dit_path, m.vae_path};
    double bytes = 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0)
            bytes += (double)st.st_size;
    }
    model_manifest_free(&m);
    if (!ctx->engine_loaded) {
        c->status = HP_FAIL;
        snprintf(c->reason, sizeof c->reason, "present, but the engine did not load them: %.440s",
                 s->model_error);
        return;
    }
    hp_check_judge(c, bytes / 1e9);
    snprintf(c->reason, sizeof c->reason,
             "present, loaded and checked by the engine (every tensor's name, shape and dtype)");
}

static void log_run(const json_t *run) {
    const json_t *reason;
    size_t i;
    fprintf(stderr, "auteur: health run %lld (%s): %s in %.2f s",
            (long long)json_integer_value(json_object_get(run, "id")),
            json_string_value(json_object_get(run, "trigger")),
            json_string_value(json_object_get(run, "verdict")),
            json_number_value(json_object_get(run, "seconds")));
    json_array_foreach(json_object_get(run, "reasons"), i, reason)
        fprintf(stderr, "%s%s", i ? "; " : ": ", json_string_value(reason));
    fputc('\n', stderr);
}

static void run_once(health_service *s, const char *trigger) {
    health_run *run = calloc(1, sizeof *run);
    au_err e;
    if (!run) {
        fprintf(stderr, "auteur: health run: out of memory\n");
        return;
    }
    snprintf(run->trigger, sizeof run->trigger, "%s", trigger);
    run->started_at = now_unix();
    run->world_size = s->world_size;
    int joined = 1;
    for (int r = 1; r < s->world_size; r++) {
        run->peers[r] = s->o.cluster_ops->rank_report(s->o.cluster, r);
        joined += run->peers[r] != NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->ranks_joined_run = joined;
    pthread_mutex_unlock(&s->mu);
    run->host_ok = health_probe_host(&run->host, "/sys/class", &e) == 0;
    if (!run->host_ok)
        snprintf(run->host_error, sizeof run->host_error, "%s", e.msg);
    if (s->o.gpu_probe(s->o.gpu_device, &s->o.thresholds.gpu, gate, s, &run->gpu, &e) != 0)
        hp_gpu_report_init(&run->gpu, &s->o.thresholds.gpu, e.msg);
    if (s->o.measuring)
        atomic_store(s->o.measuring, 0);
    check_comm(s, run, &run->service[HEALTH_CHECK_COMM]);
    check_database(s, &run->service[HEALTH_CHECK_DATABASE]);
    check_disk(s, &run->service[HEALTH_CHECK_DISK]);
    check_model(s, &run->service[HEALTH_CHECK_MODEL]);
    run->finished_at = now_unix();

    json_t *j = health_run_to_json(run, &s->o.ctx);
    for (int r = 1; r < s->world_size; r++)
        json_decref(run->peers[r]);
    free(run);
    if (!j) {
        fprintf(stderr, "auteur: health run: out of memory\n");
        return;
    }
    int64_t id = 0;
    if (health_store_insert(s->hs, j, s->o.keep_runs, &id, &e) != 0)
        fprintf(stderr, "auteur: health run not stored: %s\n", e.msg);
    json_object_set_new(j, "id", id ? json_integer(id) : json_null());
    log_run(j);
    pthread_mutex_lock(&s->mu);
    json_decref(s->last);
    s->last = j;
    pthread_mutex_unlock(&s->mu);
}

static void *runner_main(void *arg) {
    health_service *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && s->started == s->requested) {
            if (!s->o.cluster_ops) {
                pthread_cond_wait(&s->wake, &s->mu);
                continue;
            }
            struct timespec ts = deadline_after(HEALTH_RANK_POLL_MS / 1000.0);
            if (pthread_cond_timedwait(&s->wake, &s->mu, &ts) == 0)
                continue;
            int joined_run = s->ranks_joined_run;
            pthread_mutex_unlock(&s->mu);
            int joined = s->o.cluster_ops->joined(s->o.cluster);
            pthread_mutex_lock(&s->mu);
            if (joined != joined_run && s->started == s->requested) {
                fprintf(stderr,
                        "auteur: health: %d of %d ranks joined (%d at the last run): running the checks\n",
                        joined, s->world_size, joined_run);
                s->requested++;
            }
        }
        if (s->stopping)
            break;
        uint64_t gen = s->requested;
        s->started = gen;
        pthread_mutex_unlock(&s->mu);
        run_once(s, gen == 1 ? "startup" : "request");
        pthread_mutex_lock(&s->mu);
        s->finished = gen;
        s->waiting_for[0] = '\0';
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int health_service_start(health_service **out, const health_service_opts *opts, au_err *err) {
    *out = NULL;
    health_service *s = calloc(1, sizeof *s);
    if (!s)
        return au_errf(err, AU_ENOMEM, "health: out of memory");
    s->o = *opts;
    s->world_size = opts->cluster_ops ? opts->cluster_ops->world_size(opts->cluster) : 1;
    if (s->world_size < 1 || s->world_size > HEALTH_MAX_RANKS) {
        int n = s->world_size;
        free(s);
        return au_errf(err, AU_EINVAL, "health: world size %d, expected 1 to %d", n, HEALTH_MAX_RANKS);
    }
    s->ranks_joined_run = 1;
    snprintf(s->data_dir, sizeof s->data_dir, "%s", opts->ctx.data_dir ? opts->ctx.data_dir : ".");
    snprintf(s->model_dir, sizeof s->model_dir, "%s", opts->ctx.model_dir ? opts->ctx.model_dir : "");
    snprintf(s->model_error, sizeof s->model_error, "%s", opts->ctx.model_error ? opts->ctx.model_error : "");
    snprintf(s->backend, sizeof s->backend, "%s", opts->ctx.backend ? opts->ctx.backend : "");
    snprintf(s->precision, sizeof s->precision, "%s", opts->ctx.precision ? opts->ctx.precision : "");
    snprintf(s->db_path, sizeof s->db_path, "%s", opts->db_path);
    s->o.ctx.data_dir = s->data_dir;
    s->o.ctx.model_dir = s->model_dir;
    s->o.ctx.model_error = s->model_error;
    s->o.ctx.backend = opts->ctx.backend ? s->backend : NULL;
    s->o.ctx.precision = opts->ctx.precision ? s->precision : NULL;
    s->o.db_path = s->db_path;
    if (!s->o.gpu_probe) {
#ifdef AU_HAVE_CUDA
        s->o.gpu_probe = hp_gpu_run;
#else
        s->o.gpu_probe = no_cuda_probe;
#endif
    }
    int rc = health_store_open(&s->hs, s->db_path, err);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    s->requested = 1; /* the start-up run */
    if (pthread_create(&s->thread, NULL, runner_main, s) != 0) {
        health_store_close(s->hs);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->done);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return au_errf(err, AU_EIO, "health: cannot start the runner thread");
    }
    *out = s;
    return 0;
}

void health_service_stop(health_service *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    health_store_close(s->hs);
    json_decref(s->last);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int health_service_run(health_service *s, double wait_seconds) {
    pthread_mutex_lock(&s->mu);
    if (s->requested == s->started) /* none waiting to start: ask for one */
        s->requested++;
    uint64_t target = s->requested;
    pthread_cond_broadcast(&s->wake);
    struct timespec ts = deadline_after(wait_seconds);
    while (!s->stopping && s->finished < target)
        if (pthread_cond_timedwait(&s->done, &s->mu, &ts) != 0)
            break;
    int finished = s->finished >= target;
    pthread_mutex_unlock(&s->mu);
    return finished;
}

json_t *health_service_report(health_service *s, const health_live *live) {
    pthread_mutex_lock(&s->mu);
    int had_last = s->last != NULL;
    json_t *last = had_last ? json_deep_copy(s->last) : NULL;
    int pending = s->finished < s->requested;
    char waiting[sizeof s->waiting_for];
    memcpy(waiting, s->waiting_for, sizeof waiting);
    pthread_mutex_unlock(&s->mu);
    if (had_last && !last)
        return NULL;

    const health_cluster_ops *ops = s->o.cluster_ops;
    int joined = ops ? ops->joined(s->o.cluster) : 1;
    const char *transport = ops ? ops->comm_name(s->o.cluster) : NULL;
    if (last && ops) { /* the other ranks as they are now */
        json_t *ranks = json_object_get(last, "ranks"), *now = peer_ranks_now(s), *rank;
        size_t i;
        if (!now) {
            json_decref(last);
            return NULL;
        }
        while (json_array_size(ranks) > 1)
            json_array_remove(ranks, json_array_size(ranks) - 1);
        joined = 1;
        json_array_foreach(now, i, rank) joined += json_is_true(json_object_get(rank, "joined"));
        json_array_extend(ranks, now);
        json_decref(now);
    }
    health_live l = *live;
    l.run_pending = pending;
    json_t *reasons = json_array();
    health_verdict v = health_decide(last, &l, s->world_size, reasons);
    const char *not_ready = NULL;
    if (v == HEALTH_NOT_READY)
        not_ready = json_string_value(json_array_get(reasons, 0));
    else if (live->queue_full)
        not_ready = "the job queue is full";
    json_t *run =
        json_pack("{s:o, s:b, s:o}", "id", last ? json_incref(json_object_get(last, "id")) : json_null(),
                  "pending", pending, "waiting_for", waiting[0] ? json_string(waiting) : json_null());
    static const char *const run_keys[] = {"trigger", "started_at", "finished_at", "seconds", "transport"};
    for (size_t i = 0; run && last && i < sizeof run_keys / sizeof run_keys[0]; i++)
        json_object_set(run, run_keys[i], json_object_get(last, run_keys[i]));
    json_t *o = json_pack("{s:s, s:o, s:{s:b, s:o}, s:o, s:o, s:i, s:i, s:o, s:o, s:o}", "verdict",
                          health_verdict_name(v), "reasons", reasons, "ready", "ok", not_ready == NULL,
                          "reason", not_ready ? json_string(not_ready) : json_null(), "thresholds",
                          health_thresholds_json(&s->o.thresholds), "run", run, "world_size", s->world_size,
                          "ranks_joined", joined, "transport",
                          transport && transport[0] ? json_string(transport) : json_null(), "ranks",
                          last ? json_incref(json_object_get(last, "ranks")) : json_array(), "checks",
                          last ? json_incref(json_object_get(last, "checks")) : json_array());
    json_decref(last);
    return o;
}

int health_service_history(health_service *s, int limit, json_t **out, au_err *err) {
    json_t *data;
    int rc = health_store_history(s->hs, limit, &data, err);
    if (rc)
        return rc;
    *out = json_pack("{s:s, s:o}", "object", "list", "data", data);
    return *out ? 0 : au_errf(err, AU_ENOMEM, "health history: out of memory");
}
