// deps: au_server
/* test_health_service.c - the /health runner with a stand-in GPU probe (health_service_opts.
 * gpu_probe) that asks the gate before each check as hp_gpu_run does: the start-up run waits
 * while a job is generating and shows it as pending with what it waits for; it measures once
 * the queue is empty; a request during the wait joins it, one after asks for another; the
 * verdict follows (READY with every check passing on a GPU engine); runs land in the history;
 * a busy callback that fails, and a stop during the wait, leave the GPU checks SKIP with the
 * reason, and stop returns promptly. With a stand-in two-rank cluster (health_cluster_ops):
 * DEGRADED with rank 1 missing until it joins, then a run of its own with the comm benchmark
 * (never beside a job, with the dispatcher held), READY; rank 1 leaving shows at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/health.h"
#include "server/health_store.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static volatile int job_running; /* what the busy callback reports */
static volatile int busy_broken;
static volatile int busy_calls;

static int fake_busy(void *user, char *why, size_t cap) {
    busy_calls++;
    if (busy_broken) {
        snprintf(why, cap, "store: database is locked");
        return -1;
    }
    if (!job_running)
        return 0;
    snprintf(why, cap, "1 job(s) queued or generating");
    return 1;
}

/* hp_gpu_run's contract on a GPU that passes everything. */
static int fake_gpu(int device, const hp_thresholds *t, hp_gate_fn gate, void *user, hp_gpu_report *out,
                    au_err *err) {
    static const double values[HP_N_CHECKS] = {2900, 650, 600, 1200, 1100, 0.002, 0.004};
    hp_gpu_report_init(out, t, "");
    out->available = 1;
    snprintf(out->facts.name, sizeof out->facts.name, "Stand-in GPU");
    out->facts.sm_count = 132;
    for (int i = 0; i < HP_N_CHECKS; i++) {
        char reason[512] = "";
        if (gate(user, reason, sizeof reason) != 0) {
            for (int j = i; j < HP_N_CHECKS; j++)
                hp_check_skip(&out->checks[j], reason);
            return 0;
        }
        hp_check_judge(&out->checks[i], values[i]);
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static json_t *report(health_service *s) {
    health_live live = {.db_ok = 1, .engine_loaded = 1};
    return health_service_report(s, &live);
}

static const char *verdict(const json_t *r) {
    return json_string_value(json_object_get(r, "verdict"));
}

static const json_t *run_of(const json_t *r) {
    return json_object_get(r, "run");
}

/* ---- a stand-in cluster of two ranks ---- */

static volatile int worker_joined;
static volatile int bench_calls, bench_beside_job, bench_unheld;
static atomic_int measuring;

static int fake_world_size(void *cl) {
    return *(int *)cl;
}

static int fake_joined(void *cl) {
    return 1 + worker_joined;
}

static const char *fake_comm_name(void *cl) {
    return worker_joined ? "tcp" : ""; /* as cluster_comm_name */
}

static json_t *fake_rank_report(void *cl, int rank) {
    if (rank != 1 || !worker_joined)
        return NULL;
    return json_pack("{s:{s:s, s:s}, s:{s:b, s:s}, s:{s:s, s:s}}", "host", "hostname", "fake-worker",
                     "cpu_arch", "aarch64", "gpu", "available", 1, "name", "Stand-in GPU", "engine",
                     "backend", "cuda", "precision", "fp8");
}

static int fake_comm_bench(void *cl, size_t bytes, int iters, double *busbw_gbs, double *seconds,
                           au_err *err) {
    bench_calls++;
    bench_beside_job += job_running;
    bench_unheld += atomic_load(&measuring) == 0;
    if (bytes != HEALTH_COMM_BENCH_BYTES || iters != HEALTH_COMM_BENCH_ITERS)
        return au_errf(err, AU_EINVAL, "unexpected benchmark size");
    *busbw_gbs = 20.0;
    *seconds = 0.03;
    return 0;
}

static const health_cluster_ops fake_cluster = {
    .world_size = fake_world_size,
    .joined = fake_joined,
    .comm_name = fake_comm_name,
    .rank_report = fake_rank_report,
    .comm_bench = fake_comm_bench,
};

/* The report once the run numbered id (or a later one) has finished, NULL after 10 s. */
static json_t *report_after_run(health_service *s, json_int_t id) {
    double deadline = now_s() + 10;
    while (now_s() < deadline) {
        json_t *r = report(s);
        if (json_integer_value(json_object_get(run_of(r), "id")) >= id)
            return r;
        json_decref(r);
        usleep(50 * 1000);
    }
    return NULL;
}

static const json_t *check_named(const json_t *r, const char *name) {
    const json_t *c;
    size_t i;
    json_array_foreach(json_object_get(r, "checks"), i,
                       c) if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) return c;
    return NULL;
}

static void test_two_ranks(const char *dir, const char *model) {
    char db[512];
    snprintf(db, sizeof db, "%s/two.db", dir);
    int world = 2;
    atomic_init(&measuring, 0);
    health_service_opts o = {
        .ctx =
            {.data_dir = dir, .model_dir = model, .engine_loaded = 1, .model_error = "", .backend = "cuda"},
        .db_path = db,
        .busy = fake_busy,
        .gpu_probe = fake_gpu,
        .keep_runs = 10,
        .measuring = &measuring,
        .cluster_ops = &fake_cluster,
        .cluster = &world,
    };
    health_thresholds_default(&o.thresholds);
    health_service *s;
    au_err err;
    job_running = 0;
    busy_broken = 0;

    /* world size 2, only rank 0 joined: DEGRADED, rank 1 missing, no benchmark */
    worker_joined = 0;
    CHECK(health_service_start(&s, &o, &err) == 0);
    json_t *r = report_after_run(s, 1);
    CHECK(r != NULL);
    CHECK(strcmp(verdict(r), "DEGRADED") == 0);
    CHECK(json_integer_value(json_object_get(r, "world_size")) == 2 &&
          json_integer_value(json_object_get(r, "ranks_joined")) == 1);
    CHECK(json_is_null(json_object_get(r, "transport")));
    const json_t *ranks = json_object_get(r, "ranks"), *comm = check_named(r, "comm_allreduce");
    CHECK(json_array_size(ranks) == 2 && json_is_false(json_object_get(json_array_get(ranks, 1), "joined")));
    CHECK(comm && strcmp(json_string_value(json_object_get(comm, "status")), "FAIL") == 0 &&
          strcmp(json_string_value(json_object_get(comm, "reason")), "rank 1 missing") == 0);
    CHECK(strcmp(json_string_value(json_array_get(json_object_get(r, "reasons"), 0)),
                 "comm_allreduce FAIL: rank 1 missing") == 0);
    CHECK(bench_calls == 0);
    json_decref(r);

    /* rank 1 joins: the runner sees it and runs again, measuring the comm: READY */
    worker_joined = 1;
    r = report_after_run(s, 2);
    CHECK(r != NULL);
    CHECK(strcmp(verdict(r), "READY") == 0 && json_array_size(json_object_get(r, "reasons")) == 0);
    CHECK(json_integer_value(json_object_get(r, "ranks_joined")) == 2);
    CHECK(strcmp(json_string_value(json_object_get(r, "transport")), "tcp") == 0 &&
          strcmp(json_string_value(json_object_get(run_of(r), "transport")), "tcp") == 0);
    const json_t *r1 = json_array_get(json_object_get(r, "ranks"), 1);
    CHECK(json_is_true(json_object_get(r1, "joined")) &&
          strcmp(json_string_value(json_object_get(r1, "role")), "worker") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r1, "host"), "hostname")),
                 "fake-worker") == 0);
    comm = check_named(r, "comm_allreduce");
    CHECK(comm && json_number_value(json_object_get(comm, "value")) == 20 &&
          strcmp(json_string_value(json_object_get(comm, "status")), "PASS") == 0);
    CHECK(comm && strstr(json_string_value(json_object_get(comm, "reason")), "over tcp") &&
          strstr(json_string_value(json_object_get(comm, "detail")), "tcp all-reduce of 32 MiB, 10 times"));
    CHECK(bench_calls == 1);
    json_decref(r);

    /* a job generating: the comm benchmark waits for it too, and holds the dispatcher */
    job_running = 1;
    CHECK(health_service_run(s, 0.5) == 0);
    CHECK(bench_calls == 1);
    job_running = 0;
    CHECK(health_service_run(s, 10) == 1);
    CHECK(bench_calls >= 2 && bench_beside_job == 0 && bench_unheld == 0);
    CHECK(atomic_load(&measuring) == 0); /* lowered once the run is over */

    /* rank 1 leaves: the report shows it at once, and a run follows */
    r = report(s);
    json_int_t id = json_integer_value(json_object_get(run_of(r), "id"));
    json_decref(r);
    worker_joined = 0;
    r = report(s);
    CHECK(strcmp(verdict(r), "DEGRADED") == 0 && json_integer_value(json_object_get(r, "ranks_joined")) == 1);
    CHECK(json_is_false(json_object_get(json_array_get(json_object_get(r, "ranks"), 1), "joined")));
    json_decref(r);
    r = report_after_run(s, id + 1);
    CHECK(r && strcmp(json_string_value(json_object_get(check_named(r, "comm_allreduce"), "status")),
                      "FAIL") == 0);
    json_decref(r);
    health_service_stop(s);

    /* more ranks than a report holds */
    world = HEALTH_MAX_RANKS + 1;
    CHECK(health_service_start(&s, &o, &err) == AU_EINVAL && strstr(err.msg, "world size 9"));
}

int main(void) {
    char dir[] = "/tmp/auteur-hsvc-XXXXXX", db[256], model[1024];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    snprintf(model, sizeof model, "%s/models/tiny-random", src ? src : ".");
    snprintf(db, sizeof db, "%s/auteur.db", dir);
    health_service_opts o = {
        .ctx =
            {.data_dir = dir, .model_dir = model, .engine_loaded = 1, .model_error = "", .backend = "cuda"},
        .db_path = db,
        .busy = fake_busy,
        .gpu_probe = fake_gpu,
        .keep_runs = 10,
    };
    health_thresholds_default(&o.thresholds);
    health_service *s;
    au_err err;

    /* a job is generating: the start-up run waits */
    job_running = 1;
    CHECK(health_service_start(&s, &o, &err) == 0);
    usleep(300 * 1000);
    json_t *r = report(s);
    CHECK(strcmp(verdict(r), "DEGRADED") == 0);
    CHECK(strstr(json_string_value(json_array_get(json_object_get(r, "reasons"), 0)), "pending") != NULL);
    CHECK(json_is_true(json_object_get(run_of(r), "pending")) &&
          json_is_null(json_object_get(run_of(r), "id")));
    CHECK(json_string_value(json_object_get(run_of(r), "waiting_for")) &&
          strcmp(json_string_value(json_object_get(run_of(r), "waiting_for")),
                 "1 job(s) queued or generating") == 0);
    CHECK(json_array_size(json_object_get(r, "ranks")) == 0);
    CHECK(json_is_true(json_object_get(json_object_get(r, "ready"), "ok"))); /* it can still take jobs */
    json_decref(r);
    CHECK(busy_calls >= 1);
    CHECK(health_service_run(s, 0.3) == 0); /* joins the waiting start-up run, which still waits */

    /* the queue empties: the start-up run measures, then the run asked for next */
    job_running = 0;
    double t0 = now_s();
    CHECK(health_service_run(s, 10) == 1);
    CHECK(now_s() - t0 < 5);
    r = report(s);
    CHECK(strcmp(verdict(r), "READY") == 0 && json_array_size(json_object_get(r, "reasons")) == 0);
    CHECK(json_integer_value(json_object_get(run_of(r), "id")) == 2);
    CHECK(strcmp(json_string_value(json_object_get(run_of(r), "trigger")), "request") == 0);
    CHECK(json_is_false(json_object_get(run_of(r), "pending")) &&
          json_is_null(json_object_get(run_of(r), "waiting_for")));
    json_t *rank = json_array_get(json_object_get(r, "ranks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(rank, "gpu"), "name")), "Stand-in GPU") ==
          0);
    CHECK(json_number_value(json_object_get(json_array_get(json_object_get(rank, "checks"), 0), "value")) ==
          2900);
    json_t *c;
    size_t i;
    json_array_foreach(json_object_get(r, "checks"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name")),
                   *status = json_string_value(json_object_get(c, "status"));
        CHECK(strcmp(status, strcmp(name, "comm_allreduce") == 0 ? "SKIP" : "PASS") == 0);
    }
    json_decref(r);
    json_t *hist;
    CHECK(health_service_history(s, 10, &hist, &err) == 0);
    CHECK(strcmp(json_string_value(json_object_get(hist, "object")), "list") == 0);
    CHECK(json_array_size(json_object_get(hist, "data")) == 2);
    CHECK(strcmp(
              json_string_value(json_object_get(json_array_get(json_object_get(hist, "data"), 1), "trigger")),
              "startup") == 0);
    json_decref(hist);
    CHECK(health_service_history(s, 0, &hist, &err) == AU_EINVAL);

    /* the busy callback fails: unmeasured rather than beside a job */
    busy_broken = 1;
    CHECK(health_service_run(s, 10) == 1);
    busy_broken = 0;
    r = report(s);
    rank = json_array_get(json_object_get(r, "ranks"), 0);
    c = json_array_get(json_object_get(rank, "checks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(c, "status")), "SKIP") == 0);
    CHECK(strstr(json_string_value(json_object_get(c, "reason")), "cannot tell whether a job is running"));
    CHECK(strcmp(verdict(r), "DEGRADED") == 0); /* GPU checks not measured on a GPU: one reason for all */
    CHECK(json_array_size(json_object_get(r, "reasons")) == 1);
    CHECK(strstr(json_string_value(json_array_get(json_object_get(r, "reasons"), 0)),
                 "rank 0 memory_bandwidth, gemm_fp16, gemm_fp16_wan13b, gemm_fp8, gemm_fp8_wan13b, "
                 "fp8_gemm_selftest, attention_selftest not measured: cannot tell"));
    json_decref(r);

    /* stop while the run waits for a job */
    job_running = 1;
    CHECK(health_service_run(s, 0.3) == 0);
    t0 = now_s();
    health_service_stop(s);
    CHECK(now_s() - t0 < 2);
    test_two_ranks(dir, model);

    health_store *hs;
    CHECK(health_store_open(&hs, db, &err) == 0);
    CHECK(health_store_history(hs, 10, &hist, &err) == 0 && json_array_size(hist) == 4);
    rank = json_array_get(json_object_get(json_array_get(hist, 0), "ranks"), 0);
    c = json_array_get(json_object_get(rank, "checks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(c, "reason")), "the service is stopping") == 0);
    json_decref(hist);
    health_store_close(hs);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "test_health_service: %d checks failed\n", failures);
        return 1;
    }
    printf("test_health_service: ok\n");
    return 0;
}
