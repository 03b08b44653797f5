// deps: au_server
/* test_health.c - the /health report without a server: check judging, thresholds from a
 * file, a run as JSON, the verdict in every case health.h lists, the table and Prometheus
 * renderings, and the host probe over a fake sysfs tree.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/health.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static char tmp_dir[] = "/tmp/auteur-health-XXXXXX";

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void test_judge(void) {
    hp_check c;
    hp_check_init(&c, "memory_bandwidth", "GB/s", 80, 1);
    CHECK(c.status == HP_SKIP && !c.measured && c.has_threshold);
    hp_check_judge(&c, 107.5);
    CHECK(c.status == HP_PASS && c.measured && c.value == 107.5 && strstr(c.reason, "at least 80 GB/s"));
    hp_check_judge(&c, 79.9);
    CHECK(c.status == HP_FAIL && strstr(c.reason, "below the minimum of 80 GB/s"));
    hp_check_init(&c, "attention_selftest", "", 0.02, 0);
    hp_check_judge(&c, 0.004);
    CHECK(c.status == HP_PASS && strstr(c.reason, "at most 0.02"));
    hp_check_judge(&c, 0.5);
    CHECK(c.status == HP_FAIL && strstr(c.reason, "above the maximum"));
    hp_check_judge(&c, NAN);
    CHECK(c.status == HP_FAIL && strstr(c.reason, "NaN"));
    hp_check_init(&c, "database_writable", "ms", NAN, 0);
    CHECK(!c.has_threshold);
    hp_check_judge(&c, 12.0);
    CHECK(c.status == HP_PASS);
}

static void test_thresholds(void) {
    health_thresholds t;
    au_err err;
    char path[256];
    health_thresholds_default(&t);
    CHECK(t.gpu.memory_bandwidth_gbs == 80 && t.gpu.gemm_fp16_tflops == 10 && t.data_dir_min_free_gb == 1);
    CHECK(t.comm_bus_bandwidth_gbs == 15);
    snprintf(path, sizeof path, "%s/thresholds.json", tmp_dir);
    write_file(path,
               "{\"memory_bandwidth_gbs\": 100, \"gemm_fp8_tflops\": 20.5, \"data_dir_min_free_gb\": 0}");
    CHECK(health_thresholds_load(&t, path, &err) == 0);
    CHECK(t.gpu.memory_bandwidth_gbs == 100 && t.gpu.gemm_fp8_tflops == 20.5 && t.data_dir_min_free_gb == 0);
    CHECK(t.gpu.gemm_fp16_tflops == 10); /* untouched keys keep their default */
    json_t *j = health_thresholds_json(&t);
    CHECK(json_number_value(json_object_get(j, "memory_bandwidth_gbs")) == 100 && json_object_size(j) == 7);
    json_decref(j);

    write_file(path, "{\"memory_bandwidth\": 100}");
    CHECK(health_thresholds_load(&t, path, &err) == AU_EINVAL && strstr(err.msg, "\"memory_bandwidth\""));
    write_file(path, "{\"gemm_fp16_tflops\": -1}");
    CHECK(health_thresholds_load(&t, path, &err) == AU_EINVAL && strstr(err.msg, "gemm_fp16_tflops"));
    write_file(path, "{\"gemm_fp16_tflops\": \"10\"}");
    CHECK(health_thresholds_load(&t, path, &err) == AU_EINVAL && strstr(err.msg, "non-negative number"));
    write_file(path, "[1, 2]");
    CHECK(health_thresholds_load(&t, path, &err) == AU_EINVAL && strstr(err.msg, "JSON object"));
    write_file(path, "{");
    CHECK(health_thresholds_load(&t, path, &err) == AU_EINVAL && strstr(err.msg, path));
    CHECK(health_thresholds_load(&t, "/nonexistent/t.json", &err) == AU_EINVAL &&
          strstr(err.msg, "/nonexistent/t.json"));
}

/* A run as a GPU machine would produce it: every GPU check measured and passing. */
static void make_gpu_run(health_run *run, const health_thresholds *t) {
    memset(run, 0, sizeof *run);
    snprintf(run->trigger, sizeof run->trigger, "request");
    run->started_at = 1795540000.25;
    run->finished_at = 1795540002.75;
    run->host_ok = 1;
    snprintf(run->host.hostname, sizeof run->host.hostname, "spark-1");
    snprintf(run->host.cpu_arch, sizeof run->host.cpu_arch, "aarch64");
    run->host.cpu_cores = 20;
    run->host.n_rdma = 1;
    snprintf(run->host.rdma[0].name, sizeof run->host.rdma[0].name, "rocep1s0f0");
    run->host.rdma[0].n_ports = 1;
    run->host.rdma[0].ports[0].port = 1;
    snprintf(run->host.rdma[0].ports[0].state, sizeof run->host.rdma[0].ports[0].state, "4: ACTIVE");
    hp_gpu_report_init(&run->gpu, &t->gpu, "");
    run->gpu.available = 1;
    snprintf(run->gpu.facts.name, sizeof run->gpu.facts.name, "NVIDIA GB10");
    run->gpu.facts.cc_major = 12;
    run->gpu.facts.cc_minor = 1;
    run->gpu.facts.unified = 1;
    run->gpu.facts.runtime_version = 13000;
    run->gpu.facts.driver_api_version = 13010;
    const double values[HP_N_CHECKS] = {107.5, 59.6, 55.2, 110.3, 98.1, 0.003, 0.006};
    for (int i = 0; i < HP_N_CHECKS; i++)
        hp_check_judge(&run->gpu.checks[i], values[i]);
    run->world_size = 1;
    hp_check_init(&run->service[HEALTH_CHECK_COMM], "comm_allreduce", "GB/s", t->comm_bus_bandwidth_gbs, 1);
    hp_check_skip(&run->service[HEALTH_CHECK_COMM], "single rank");
    hp_check_init(&run->service[HEALTH_CHECK_DATABASE], "database_writable", "ms", NAN, 0);
    hp_check_judge(&run->service[HEALTH_CHECK_DATABASE], 0.5);
    hp_check_init(&run->service[HEALTH_CHECK_DISK], "data_dir_free_space", "GB", 1, 1);
    hp_check_judge(&run->service[HEALTH_CHECK_DISK], 500);
    hp_check_init(&run->service[HEALTH_CHECK_MODEL], "model_files", "GB", NAN, 1);
    hp_check_judge(&run->service[HEALTH_CHECK_MODEL], 17.2);
}

/* health_decide on the run with one change; returns the verdict, reasons in *first. */
static health_verdict decide(const health_run *run, const health_context *ctx, const health_live *live,
                             int world_size, char *first, size_t cap) {
    json_t *j = run ? health_run_to_json(run, ctx) : NULL;
    json_t *reasons = json_array();
    health_verdict v = health_decide(j, live, world_size, reasons);
    snprintf(first, cap, "%s", json_array_size(reasons) ? json_string_value(json_array_get(reasons, 0)) : "");
    json_decref(reasons);
    json_decref(j);
    return v;
}

static void test_run_json_and_verdict(void) {
    health_thresholds t;
    health_thresholds_default(&t);
    health_run *run = malloc(sizeof *run);
    health_context ctx = {
        .data_dir = "/d", .model_dir = "/m", .engine_loaded = 1, .backend = "cuda", .precision = "fp8"};
    health_live live = {.db_ok = 1, .engine_loaded = 1};
    char why[512];
    make_gpu_run(run, &t);

    json_t *j = health_run_to_json(run, &ctx);
    CHECK(j != NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "verdict")), "READY") == 0);
    CHECK(json_array_size(json_object_get(j, "reasons")) == 0);
    CHECK(json_number_value(json_object_get(j, "started_at")) == 1795540000.25);
    CHECK(json_number_value(json_object_get(j, "seconds")) == 2.5);
    CHECK(json_integer_value(json_object_get(j, "world_size")) == 1);
    CHECK(json_integer_value(json_object_get(j, "ranks_joined")) == 1);
    CHECK(json_is_null(json_object_get(j, "transport")));
    CHECK(json_array_size(json_object_get(j, "ranks")) == 1);
    json_t *rank = json_array_get(json_object_get(j, "ranks"), 0);
    CHECK(json_integer_value(json_object_get(rank, "rank")) == 0 &&
          strcmp(json_string_value(json_object_get(rank, "role")), "server") == 0 &&
          json_is_true(json_object_get(rank, "joined")));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(rank, "host"), "hostname")), "spark-1") ==
          0);
    json_t *gpu = json_object_get(rank, "gpu");
    CHECK(json_is_true(json_object_get(gpu, "available")));
    CHECK(strcmp(json_string_value(json_object_get(gpu, "memory")), "unified") == 0);
    CHECK(strcmp(json_string_value(json_object_get(gpu, "compute_capability")), "12.1") == 0);
    CHECK(strcmp(json_string_value(json_object_get(gpu, "cuda_driver_api_version")), "13.1") == 0);
    CHECK(json_is_null(json_object_get(gpu, "driver_version")));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(rank, "engine"), "precision")), "fp8") ==
          0);
    CHECK(strcmp(health_precision_of("cpu", AU_PRECISION_FP8), "float32") == 0);
    CHECK(strcmp(health_precision_of("cuda", AU_PRECISION_FP8), "fp8") == 0);
    CHECK(strcmp(health_precision_of("cuda", AU_PRECISION_BF16), "bf16") == 0);
    CHECK(health_precision_of("metal", AU_PRECISION_FP8) == NULL &&
          health_precision_of(NULL, AU_PRECISION_FP8) == NULL);
    json_t *bw = json_array_get(json_object_get(rank, "checks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(bw, "name")), "memory_bandwidth") == 0);
    CHECK(json_number_value(json_object_get(bw, "value")) == 107.5);
    CHECK(strcmp(json_string_value(json_object_get(bw, "comparison")), ">=") == 0);
    CHECK(json_array_size(json_object_get(rank, "checks")) == HP_N_CHECKS);
    json_t *rdma = json_array_get(json_object_get(json_object_get(rank, "network"), "rdma"), 0);
    CHECK(strcmp(json_string_value(json_object_get(rdma, "name")), "rocep1s0f0") == 0);
    json_t *comm = json_array_get(json_object_get(j, "checks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(comm, "name")), "comm_allreduce") == 0);
    CHECK(json_is_null(json_object_get(comm, "value")) &&
          strcmp(json_string_value(json_object_get(comm, "status")), "SKIP") == 0 &&
          strcmp(json_string_value(json_object_get(comm, "reason")), "single rank") == 0);
    CHECK(json_number_value(json_object_get(comm, "threshold")) == 15);
    json_decref(j);

    /* READY; a rank missing */
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_READY && why[0] == '\0');
    CHECK(decide(run, &ctx, &live, 2, why, sizeof why) == HEALTH_DEGRADED &&
          strcmp(why, "rank 1 missing") == 0);
    /* below a threshold */
    hp_check_judge(&run->gpu.checks[HP_CHECK_BANDWIDTH], 60);
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_DEGRADED &&
          strstr(why, "rank 0 memory_bandwidth FAIL: 60 GB/s, below the minimum of 80 GB/s"));
    hp_check_judge(&run->gpu.checks[HP_CHECK_BANDWIDTH], 107.5);
    /* a GPU check not measured on a GPU that is there */
    hp_check_skip(&run->gpu.checks[HP_CHECK_GEMM_FP8], "needs 1 GiB of GPU memory, 0.5 GiB free");
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_DEGRADED &&
          strstr(why, "gemm_fp8 not measured: needs 1 GiB"));
    hp_check_judge(&run->gpu.checks[HP_CHECK_GEMM_FP8], 110.3);
    /* the engine on the CPU beside a GPU */
    ctx.backend = "cpu";
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_DEGRADED &&
          strstr(why, "cpu backend beside"));
    ctx.backend = "cuda";
    /* no GPU: CPU-only, and its SKIPs are that one reason */
    hp_gpu_report_init(&run->gpu, &t.gpu, "no GPU: cudaGetDeviceCount: no CUDA-capable device is detected");
    json_t *reasons = json_array();
    j = health_run_to_json(run, &ctx);
    CHECK(health_decide(j, &live, 1, reasons) == HEALTH_DEGRADED && json_array_size(reasons) == 1);
    CHECK(
        strstr(json_string_value(json_array_get(reasons, 0)), "rank 0 CPU-only: no GPU: cudaGetDeviceCount"));
    json_decref(reasons);
    json_decref(j);
    /* NOT_READY: database not writable in the run, model files failing, engine or database now */
    make_gpu_run(run, &t);
    hp_check_fail(&run->service[HEALTH_CHECK_DATABASE], "sqlite: attempt to write a readonly database");
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_NOT_READY &&
          strstr(why, "database_writable FAIL"));
    make_gpu_run(run, &t);
    hp_check_fail(&run->service[HEALTH_CHECK_MODEL], "/m/auteur-model.json: No such file or directory");
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_NOT_READY &&
          strstr(why, "model_files FAIL"));
    make_gpu_run(run, &t);
    health_live no_engine = {.db_ok = 1, .engine_loaded = 0}, no_db = {.db_ok = 0, .engine_loaded = 1};
    CHECK(decide(run, &ctx, &no_engine, 1, why, sizeof why) == HEALTH_NOT_READY && strstr(why, "no engine"));
    CHECK(decide(run, &ctx, &no_db, 1, why, sizeof why) == HEALTH_NOT_READY &&
          strstr(why, "database unusable"));
    /* a data dir below its threshold only degrades */
    hp_check_judge(&run->service[HEALTH_CHECK_DISK], 0.5);
    CHECK(decide(run, &ctx, &live, 1, why, sizeof why) == HEALTH_DEGRADED &&
          strstr(why, "data_dir_free_space FAIL"));
    /* no run yet */
    health_live pending = {.db_ok = 1, .engine_loaded = 1, .run_pending = 1};
    CHECK(decide(NULL, &ctx, &pending, 1, why, sizeof why) == HEALTH_DEGRADED && strstr(why, "pending"));
    CHECK(decide(NULL, &ctx, &no_engine, 1, why, sizeof why) == HEALTH_NOT_READY);
    free(run);
}

/* What the second GB10 sends when it joins. */
static json_t *worker_hardware(int with_gpu) {
    health_host *h = calloc(1, sizeof *h);
    hp_gpu_report *g = calloc(1, sizeof *g);
    hp_thresholds t;
    hp_thresholds_default(&t);
    snprintf(h->hostname, sizeof h->hostname, "spark-2");
    snprintf(h->cpu_arch, sizeof h->cpu_arch, "aarch64");
    h->cpu_cores = 20;
    hp_gpu_report_init(g, &t, "no GPU: cudaGetDeviceCount: no CUDA-capable device is detected");
    if (with_gpu) {
        g->available = 1;
        snprintf(g->facts.name, sizeof g->facts.name, "NVIDIA GB10");
        g->facts.unified = 1;
    }
    json_t *hw = health_hardware_json(h, NULL, g, "cuda", "fp8");
    free(h);
    free(g);
    return hw;
}

/* A two-rank run: rank 1 joined or missing, the comm check measured or failing. */
static void make_two_rank_run(health_run *run, const health_thresholds *t, json_t *worker, double busbw) {
    make_gpu_run(run, t);
    run->world_size = 2;
    run->peers[1] = worker;
    hp_check *c = &run->service[HEALTH_CHECK_COMM];
    hp_check_init(c, "comm_allreduce", "GB/s", t->comm_bus_bandwidth_gbs, 1);
    if (worker) {
        snprintf(run->transport, sizeof run->transport, "nccl");
        hp_check_judge(c, busbw);
    } else {
        hp_check_fail(c, "rank 1 missing");
    }
}

static int has_reason(const json_t *reasons, const char *text) {
    const json_t *r;
    size_t i;
    json_array_foreach(reasons, i, r) if (strstr(json_string_value(r), text)) return 1;
    return 0;
}

static void test_ranks(void) {
    health_thresholds t;
    health_thresholds_default(&t);
    health_run *run = malloc(sizeof *run);
    health_context ctx = {
        .data_dir = "/d", .model_dir = "/m", .engine_loaded = 1, .backend = "cuda", .precision = "fp8"};
    health_live live = {.db_ok = 1, .engine_loaded = 1};
    json_t *worker = worker_hardware(1), *reasons;

    /* both ranks joined, the link above its threshold: READY */
    make_two_rank_run(run, &t, worker, 21.5);
    json_t *j = health_run_to_json(run, &ctx);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "verdict")), "READY") == 0);
    CHECK(json_integer_value(json_object_get(j, "world_size")) == 2 &&
          json_integer_value(json_object_get(j, "ranks_joined")) == 2);
    CHECK(strcmp(json_string_value(json_object_get(j, "transport")), "nccl") == 0);
    json_t *r1 = json_array_get(json_object_get(j, "ranks"), 1);
    CHECK(json_integer_value(json_object_get(r1, "rank")) == 1 &&
          json_is_true(json_object_get(r1, "joined")));
    CHECK(strcmp(json_string_value(json_object_get(r1, "role")), "worker") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r1, "host"), "hostname")), "spark-2") ==
          0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r1, "gpu"), "name")), "NVIDIA GB10") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r1, "engine"), "precision")), "fp8") == 0);
    CHECK(json_object_get(r1, "checks") == NULL); /* no benchmark runs on a worker */
    json_t *comm = json_array_get(json_object_get(j, "checks"), 0);
    CHECK(json_number_value(json_object_get(comm, "value")) == 21.5 &&
          strcmp(json_string_value(json_object_get(comm, "status")), "PASS") == 0);
    json_decref(j);

    /* the link below its threshold: DEGRADED, naming it */
    make_two_rank_run(run, &t, worker, 9);
    j = health_run_to_json(run, &ctx);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "verdict")), "DEGRADED") == 0);
    CHECK(has_reason(json_object_get(j, "reasons"),
                     "comm_allreduce FAIL: 9 GB/s, below the minimum of 15 GB/s"));
    json_decref(j);

    /* world size 2, only rank 0 joined: DEGRADED, rank 1 shown as missing */
    make_two_rank_run(run, &t, NULL, 0);
    j = health_run_to_json(run, &ctx);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "verdict")), "DEGRADED") == 0);
    CHECK(json_integer_value(json_object_get(j, "ranks_joined")) == 1 &&
          json_is_null(json_object_get(j, "transport")));
    r1 = json_array_get(json_object_get(j, "ranks"), 1);
    CHECK(json_is_false(json_object_get(r1, "joined")) && json_object_get(r1, "host") == NULL);
    CHECK(strcmp(json_string_value(json_object_get(r1, "reason")), "rank 1 missing: not joined") == 0);
    comm = json_array_get(json_object_get(j, "checks"), 0);
    CHECK(strcmp(json_string_value(json_object_get(comm, "status")), "FAIL") == 0 &&
          strcmp(json_string_value(json_object_get(comm, "reason")), "rank 1 missing") == 0);
    reasons = json_object_get(j, "reasons");
    CHECK(json_array_size(reasons) == 2 && has_reason(reasons, "comm_allreduce FAIL: rank 1 missing"));
    CHECK(strcmp(json_string_value(json_array_get(reasons, 1)), "rank 1 missing") == 0);
    /* no CPU-only or unmeasured reason for a rank that is not there */
    CHECK(!has_reason(reasons, "rank 1 CPU-only"));
    /* the missing rank alone does not make the service NOT_READY */
    reasons = json_array();
    CHECK(health_decide(j, &live, 2, reasons) == HEALTH_DEGRADED);
    json_decref(reasons);
    json_decref(j);

    /* rank 1 joined without a GPU: DEGRADED, CPU-only */
    json_t *cpu_worker = worker_hardware(0);
    make_two_rank_run(run, &t, cpu_worker, 21.5);
    j = health_run_to_json(run, &ctx);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "verdict")), "DEGRADED") == 0);
    CHECK(has_reason(json_object_get(j, "reasons"), "rank 1 CPU-only: no GPU"));
    json_decref(j);

    /* a rank entry never lets what the worker sent overwrite who it is */
    json_t *forged =
        json_pack("{s:i, s:s, s:b, s:s}", "rank", 0, "role", "server", "joined", 0, "extra", "x");
    json_t *entry = health_peer_rank_json(1, forged);
    CHECK(entry && json_integer_value(json_object_get(entry, "rank")) == 1 &&
          strcmp(json_string_value(json_object_get(entry, "role")), "worker") == 0 &&
          json_is_true(json_object_get(entry, "joined")) && json_object_get(entry, "extra"));
    json_decref(entry);
    json_decref(forged);
    json_decref(cpu_worker);
    json_decref(worker);
    free(run);
}

/* The shape of a report (health_service_report): the run's parts plus verdict, ready and run. */
static json_t *report_of(const json_t *run) {
    return json_pack(
        "{s:s, s:O, s:{s:b, s:n}, s:{s:i, s:s, s:f, s:f, s:O, s:b}, s:O, s:O, s:O, s:O, s:O, s:s}", "verdict",
        json_string_value(json_object_get(run, "verdict")), "reasons", json_object_get(run, "reasons"),
        "ready", "ok", 1, "reason", "run", "id", 7, "trigger", "request", "started_at", 1795540000.25,
        "seconds", 2.5, "transport", json_object_get(run, "transport"), "pending", 0, "world_size",
        json_object_get(run, "world_size"), "ranks_joined", json_object_get(run, "ranks_joined"), "transport",
        json_object_get(run, "transport"), "ranks", json_object_get(run, "ranks"), "checks",
        json_object_get(run, "checks"), "version", "0.1.0");
}

/* The table and the metrics of a two-rank report, rank 1 joined and then missing. */
static void test_renderings_ranks(void) {
    health_thresholds t;
    health_thresholds_default(&t);
    health_run *run = malloc(sizeof *run);
    health_context ctx = {
        .data_dir = "/d", .model_dir = "/m", .engine_loaded = 1, .backend = "cuda", .precision = "fp8"};
    json_t *worker = worker_hardware(1);
    make_two_rank_run(run, &t, worker, 21.5);
    json_t *j = health_run_to_json(run, &ctx), *report = report_of(j);
    char *table = health_table_render(report);
    CHECK(table && strstr(table, "auteur health: READY (ready: yes)"));
    CHECK(table && strstr(table, "ranks 2 of 2 joined, comm over nccl\n"));
    CHECK(table && strstr(table, "\nrank 1 (worker)\n  host     spark-2: aarch64"));
    CHECK(table && strstr(table, "comm_allreduce       all  21.5 GB/s      >= 15 GB/s       PASS"));
    free(table);
    char *prom = health_metrics_render(report);
    CHECK(prom && strstr(prom, "auteur_health_world_size 2\n"));
    CHECK(prom && strstr(prom, "auteur_health_ranks_joined 2\n"));
    CHECK(prom && strstr(prom, "auteur_health_rank_joined{rank=\"1\"} 1\n"));
    CHECK(prom && strstr(prom, "auteur_health_comm_bus_bandwidth_gbs{transport=\"nccl\"} 21.5\n"));
    CHECK(prom &&
          strstr(prom,
                 "auteur_health_check_value{check=\"comm_allreduce\",rank=\"all\",unit=\"GB/s\"} 21.5\n"));
    free(prom);
    json_decref(report);
    json_decref(j);

    make_two_rank_run(run, &t, NULL, 0);
    j = health_run_to_json(run, &ctx);
    report = report_of(j);
    table = health_table_render(report);
    CHECK(table && strstr(table, "auteur health: DEGRADED"));
    CHECK(table && strstr(table, "  - comm_allreduce FAIL: rank 1 missing\n  - rank 1 missing\n"));
    CHECK(table && strstr(table, "ranks 1 of 2 joined\n"));
    CHECK(table && strstr(table, "\nrank 1 (worker): missing\n  rank 1 missing: not joined\n"));
    CHECK(table &&
          strstr(table, "comm_allreduce       all  -              >= 15 GB/s       FAIL   rank 1 missing"));
    free(table);
    prom = health_metrics_render(report);
    CHECK(prom && strstr(prom, "auteur_health_ranks_joined 1\n"));
    CHECK(prom && strstr(prom, "auteur_health_rank_joined{rank=\"0\"} 1\n"));
    CHECK(prom && strstr(prom, "auteur_health_rank_joined{rank=\"1\"} 0\n"));
    CHECK(prom && !strstr(prom, "auteur_health_comm_bus_bandwidth_gbs{")); /* not measured */
    CHECK(prom &&
          strstr(prom,
                 "auteur_health_check_status{check=\"comm_allreduce\",rank=\"all\",status=\"FAIL\"} 1\n"));
    free(prom);
    json_decref(report);
    json_decref(j);
    json_decref(worker);
    free(run);
}

static void test_renderings(void) {
    health_thresholds t;
    health_thresholds_default(&t);
    health_run *run = malloc(sizeof *run);
    health_context ctx = {.data_dir = "/d", .model_dir = "/m", .engine_loaded = 1, .backend = "cuda"};
    make_gpu_run(run, &t);
    hp_check_judge(&run->gpu.checks[HP_CHECK_GEMM_FP16], 5.0);
    json_t *j = health_run_to_json(run, &ctx);
    json_t *report = report_of(j);
    CHECK(report != NULL);
    char *table = health_table_render(report);
    CHECK(table && strstr(table, "auteur health: DEGRADED (ready: yes)"));
    CHECK(table && strstr(table, "  - rank 0 gemm_fp16 FAIL: 5 TFLOP/s, below the minimum of 10 TFLOP/s"));
    CHECK(table && strstr(table, "run 7 (request) at 2026-"));
    CHECK(table && strstr(table, "NVIDIA GB10, compute capability 12.1"));
    CHECK(table && strstr(table, "unified memory"));
    CHECK(table && strstr(table, "rdma     rocep1s0f0: port 1 4: ACTIVE"));
    CHECK(table && strstr(table, "memory_bandwidth     0    107.5 GB/s     >= 80 GB/s       PASS"));
    CHECK(table && strstr(table, "gemm_fp16            0    5 TFLOP/s      >= 10 TFLOP/s    FAIL"));
    CHECK(table &&
          strstr(table, "comm_allreduce       all  -              >= 15 GB/s       SKIP   single rank"));
    CHECK(table && strstr(table, "ranks 1 of 1 joined\n"));
    free(table);

    char *prom = health_metrics_render(report);
    CHECK(prom && strstr(prom, "auteur_health_verdict{verdict=\"DEGRADED\"} 1\n"));
    CHECK(prom && strstr(prom, "auteur_health_verdict{verdict=\"READY\"} 0\n"));
    CHECK(prom && strstr(prom, "auteur_health_ready 1\n"));
    CHECK(prom &&
          strstr(prom,
                 "auteur_health_check_value{check=\"memory_bandwidth\",rank=\"0\",unit=\"GB/s\"} 107.5\n"));
    CHECK(
        prom &&
        strstr(prom, "auteur_health_check_threshold{check=\"gemm_fp16\",rank=\"0\",unit=\"TFLOP/s\"} 10\n"));
    CHECK(prom &&
          strstr(prom, "auteur_health_check_status{check=\"gemm_fp16\",rank=\"0\",status=\"FAIL\"} 1\n"));
    CHECK(prom &&
          strstr(prom, "auteur_health_check_status{check=\"gemm_fp16\",rank=\"0\",status=\"PASS\"} 0\n"));
    CHECK(prom &&
          strstr(prom,
                 "auteur_health_check_status{check=\"comm_allreduce\",rank=\"all\",status=\"SKIP\"} 1\n"));
    CHECK(prom && !strstr(prom, "auteur_health_check_value{check=\"comm_allreduce\"")); /* not measured */
    CHECK(prom && strstr(prom, "auteur_health_ranks_joined 1\n") &&
          strstr(prom, "auteur_health_world_size 1\n"));
    CHECK(prom && !strstr(prom, "auteur_health_comm_bus_bandwidth_gbs{"));
    CHECK(prom && strstr(prom, "auteur_health_last_run_timestamp_seconds 1795540000.250\n"));
    free(prom);
    json_decref(report);
    json_decref(j);
    free(run);
}

static void test_host_probe(void) {
    char sys[512], path[1024];
    health_host *h = malloc(sizeof *h);
    au_err err;
    snprintf(sys, sizeof sys, "%s/sys", tmp_dir);
    snprintf(path, sizeof path, "%s/infiniband/mlx5_1/ports/1", sys);
    mkdirs(path);
    snprintf(path, sizeof path, "%s/infiniband/mlx5_1/ports/1/state", sys);
    write_file(path, "4: ACTIVE\n");
    snprintf(path, sizeof path, "%s/infiniband/mlx5_1/ports/1/link_layer", sys);
    write_file(path, "InfiniBand\n");
    snprintf(path, sizeof path, "%s/infiniband/mlx5_1/ports/1/rate", sys);
    write_file(path, "400 Gb/sec (4X NDR)\n");
    snprintf(path, sizeof path, "%s/infiniband/mlx5_1/device/net/ib1", sys);
    mkdirs(path);
    snprintf(path, sizeof path, "%s/infiniband/mlx5_0/ports/1", sys); /* a port with no files */
    mkdirs(path);
    const char *ifs[][3] = {{"lo", "unknown", NULL}, {"eth0", "up", "10000"}, {"ib1", "down", NULL}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/net/%s", sys, ifs[i][0]);
        mkdirs(path);
        snprintf(path, sizeof path, "%s/net/%s/operstate", sys, ifs[i][0]);
        write_file(path, ifs[i][1]);
        snprintf(path, sizeof path, "%s/net/%s/mtu", sys, ifs[i][0]);
        write_file(path, "1500\n");
        if (ifs[i][2]) {
            snprintf(path, sizeof path, "%s/net/%s/speed", sys, ifs[i][0]);
            write_file(path, ifs[i][2]);
        }
    }
    CHECK(health_probe_host(h, sys, &err) == 0);
    CHECK(h->hostname[0] && h->cpu_arch[0] && h->os[0] && h->kernel[0] && h->cpu_cores > 0);
    CHECK(h->memory_total_bytes > 0);
    CHECK(h->n_rdma == 2 && strcmp(h->rdma[0].name, "mlx5_0") == 0 && strcmp(h->rdma[1].name, "mlx5_1") == 0);
    CHECK(h->rdma[0].n_ports == 1 && strcmp(h->rdma[0].ports[0].state, "unknown") == 0);
    CHECK(h->rdma[0].netdev[0] == '\0');
    CHECK(strcmp(h->rdma[1].netdev, "ib1") == 0 && h->rdma[1].ports[0].port == 1);
    CHECK(strcmp(h->rdma[1].ports[0].state, "4: ACTIVE") == 0);
    CHECK(strcmp(h->rdma[1].ports[0].link_layer, "InfiniBand") == 0);
    CHECK(strcmp(h->rdma[1].ports[0].rate, "400 Gb/sec (4X NDR)") == 0);
    CHECK(h->n_netif == 2); /* lo left out */
    CHECK(strcmp(h->netif[0].name, "eth0") == 0 && h->netif[0].speed_mbps == 10000 &&
          h->netif[0].mtu == 1500);
    CHECK(strcmp(h->netif[0].operstate, "up") == 0);
    CHECK(strcmp(h->netif[1].name, "ib1") == 0 && h->netif[1].speed_mbps == -1);

    /* no RDMA stack: none listed; no net folder: an error naming it */
    snprintf(path, sizeof path, "%s/sys2/net", tmp_dir);
    mkdirs(path);
    snprintf(sys, sizeof sys, "%s/sys2", tmp_dir);
    CHECK(health_probe_host(h, sys, &err) == 0 && h->n_rdma == 0 && h->n_netif == 0);
    CHECK(health_probe_host(h, "/nonexistent-sys", &err) == AU_EIO &&
          strstr(err.msg, "/nonexistent-sys/net"));

    uint64_t free_b = 0, total_b = 0;
    CHECK(health_probe_disk(tmp_dir, &free_b, &total_b, &err) == 0 && free_b > 0 && free_b <= total_b);
    CHECK(health_probe_disk("/nonexistent-dir", &free_b, &total_b, &err) == AU_EIO &&
          strstr(err.msg, "/nonexistent-dir"));
    free(h);
}

/* What a worker sends at join: this machine's facts, no benchmark. */
static void test_local_hardware(void) {
    json_t *hw = health_local_hardware_json("cpu", AU_PRECISION_FP8);
    CHECK(hw != NULL);
    const json_t *host = json_object_get(hw, "host"), *gpu = json_object_get(hw, "gpu"),
                 *engine = json_object_get(hw, "engine");
    CHECK(json_string_length(json_object_get(host, "hostname")) > 0);
    CHECK(json_string_length(json_object_get(host, "cpu_arch")) > 0);
    CHECK(json_is_array(json_object_get(json_object_get(hw, "network"), "rdma")));
    CHECK(json_is_boolean(json_object_get(gpu, "available")));
    if (!json_is_true(json_object_get(gpu, "available")))
        CHECK(strstr(json_string_value(json_object_get(gpu, "reason")), "no GPU") != NULL);
    CHECK(strcmp(json_string_value(json_object_get(engine, "backend")), "cpu") == 0);
    CHECK(strcmp(json_string_value(json_object_get(engine, "precision")), "float32") == 0);
    CHECK(json_object_get(hw, "checks") == NULL && json_object_get(hw, "rank") == NULL);
    json_decref(hw);
    hw = health_local_hardware_json(NULL, AU_PRECISION_FP8); /* a worker without an engine */
    CHECK(hw && json_is_null(json_object_get(json_object_get(hw, "engine"), "backend")));
    json_decref(hw);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_judge();
    test_thresholds();
    test_run_json_and_verdict();
    test_ranks();
    test_renderings();
    test_renderings_ranks();
    test_host_probe();
    test_local_hardware();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    if (failures) {
        fprintf(stderr, "test_health: %d checks failed\n", failures);
        return 1;
    }
    printf("test_health: ok\n");
    return 0;
}
