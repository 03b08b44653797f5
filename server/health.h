/* health.h - the /health report: the live hardware verification of each rank, its checks
 * against thresholds, the verdict, and its renderings (JSON, the `auteur health` table,
 * Prometheus text), plus the service that runs it (health_service.c).
 *
 * A run measures; a report judges. A run (at start-up, on request, and when a rank joins or
 * leaves; its benchmarks never while a job is generating) gathers for rank 0 (this process)
 * the host facts (health_probe_cpu.c), the GPU facts, benchmarks and self-tests
 * (kernels/health_probe.h; every GPU check SKIP "no GPU" or "no CUDA backend" where there is
 * none) and the engine in use; for each other configured rank the hardware it sent when it
 * joined (health_local_hardware_json on its side), or that it is missing; then the
 * service-wide checks: comm_allreduce (the all-reduce bus bandwidth between the ranks over
 * the cluster's comm, SKIP "single rank" with one rank, FAIL "rank 1 missing" while a
 * configured rank is not joined), database_writable, data_dir_free_space, model_files. The
 * run becomes one JSON object (health_run_to_json), stored in SQLite with its time
 * (health_store.h):
 *   {"trigger", "started_at", "finished_at", "seconds", "world_size", "ranks_joined",
 *    "transport" (the comm's: "nccl", "tcp", null with one rank), "verdict", "reasons",
 *    "ranks": [{"rank", "role" ("server", "worker"), "joined", "host", "network", "gpu",
 *               "engine", "gemm", "gpu_seconds", "checks": [check...]}
 *              | {"rank", "role", "joined": false, "reason"}  (a configured rank missing)],
 *    "checks": [check...]}
 * Rank 0's entry has every field; another rank's has what it sent (host, network, gpu,
 * engine: no benchmark runs on it).
 *   check = {"name", "value" (null when not measured), "unit", "threshold", "comparison"
 *            (">=" or "<=", null without threshold), "status" (PASS|FAIL|SKIP), "reason", "detail"}
 * The report (GET /health) is the service's own state (database, queue, model) plus the last
 * run, its entries of ranks other than 0 replaced by what the cluster knows now, with the
 * verdict decided again from the run and the live state (health_decide):
 *   NOT_READY  no engine loaded, the database unusable (unreadable now, or not writable in
 *              the run), or the model files failing their check;
 *   DEGRADED   otherwise, when a check FAILs, a GPU check was not measured on a GPU that is
 *              there, a rank has no GPU or its engine runs on the CPU (CPU-only), a configured
 *              rank is missing ("rank 1 missing"), or no run has finished yet;
 *   READY      otherwise.
 * "ready" says whether the service can take jobs now: not NOT_READY, engine loaded, database
 * readable, queue below its bound (GET /health/ready answers from it).
 */
#ifndef AU_HEALTH_H
#define AU_HEALTH_H

#include <stdatomic.h>
#include <jansson.h>
#include <stdint.h>

#include "kernels/health_probe.h"
#include "pipeline.h"
#include "status.h"

/* ---- thresholds ---- */

typedef struct health_thresholds {
    hp_thresholds gpu;
    double data_dir_min_free_gb;   /* 1 */
    /* 15: two GB10 nodes are joined by ConnectX-7 at 200 Gb/s RoCE, 25 GB/s on the wire, and
     * an all-reduce between 2 ranks moves each byte once over the link, so its bus bandwidth
     * tops out near 25 GB/s (NCCL reaches ~80-90% of it with GPUDirect RDMA). 15 GB/s (60%)
     * passes a healthy link with room for noise and fails what degrades it: a port negotiated
     * at 100 Gb/s (12.5 GB/s at most), or NCCL falling back from RDMA to TCP sockets. */
    double comm_bus_bandwidth_gbs;
} health_thresholds;

void health_thresholds_default(health_thresholds *t);
/* Override the defaults with the keys of a JSON object file, each a number:
 * memory_bandwidth_gbs, gemm_fp16_tflops, gemm_fp8_tflops, fp8_gemm_max_rel_err,
 * attention_max_rel_err, data_dir_min_free_gb, comm_bus_bandwidth_gbs. An unknown key, a
 * value that is not a non-negative number, or an unreadable file: AU_EINVAL naming it. */
int health_thresholds_load(health_thresholds *t, const char *path, au_err *err);
json_t *health_thresholds_json(const health_thresholds *t);

/* ---- host facts (health_probe_cpu.c) ---- */

#define HEALTH_MAX_RDMA 16
#define HEALTH_MAX_PORTS 4
#define HEALTH_MAX_NETIF 32

typedef struct health_rdma_port {
    int port;
    char state[32];      /* "4: ACTIVE" */
    char link_layer[32]; /* "InfiniBand", "Ethernet" */
    char rate[64];       /* "400 Gb/sec (4X NDR)" */
} health_rdma_port;

typedef struct health_rdma_dev {
    char name[64];   /* mlx5_0 */
    char netdev[64]; /* the network interface it drives, "" if none */
    int n_ports;
    health_rdma_port ports[HEALTH_MAX_PORTS];
} health_rdma_dev;

typedef struct health_netif {
    char name[64];
    char operstate[16]; /* "up", "down", "unknown" */
    int speed_mbps;     /* -1 when the driver does not say */
    int mtu;
} health_netif;

typedef struct health_host {
    char hostname[256];
    char cpu_arch[80]; /* uname machine: x86_64, aarch64 */
    char cpu_model[128];
    int cpu_cores;
    uint64_t memory_total_bytes;
    char os[128];     /* PRETTY_NAME of /etc/os-release, else uname sysname */
    char kernel[128]; /* uname release */
    int n_rdma, n_netif;
    health_rdma_dev rdma[HEALTH_MAX_RDMA];
    health_netif netif[HEALTH_MAX_NETIF]; /* loopback left out */
} health_host;

/* Hostname, CPU, memory, OS, and the network devices under sys_class ("/sys/class"): RDMA
 * devices from sys_class/infiniband (a missing folder means none), interfaces from
 * sys_class/net. AU_EIO naming what could not be read. */
int health_probe_host(health_host *h, const char *sys_class, au_err *err);
/* Free (to unprivileged users) and total bytes of the file system holding dir. */
int health_probe_disk(const char *dir, uint64_t *free_bytes, uint64_t *total_bytes, au_err *err);

/* ---- a run ---- */

enum {
    HEALTH_CHECK_COMM = 0,
    HEALTH_CHECK_DATABASE,
    HEALTH_CHECK_DISK,
    HEALTH_CHECK_MODEL,
    HEALTH_N_SERVICE
};

typedef enum health_verdict { HEALTH_READY = 0, HEALTH_DEGRADED, HEALTH_NOT_READY } health_verdict;
const char *health_verdict_name(health_verdict v);

/* What the process knows of itself, fixed at start-up. */
typedef struct health_context {
    const char *data_dir;
    const char *model_dir;
    int engine_loaded;
    const char *model_error; /* why it is not loaded */
    const char *backend;     /* pipeline_backend_name(), NULL without an engine */
    const char *precision;   /* health_precision_of(), NULL when unknown */
} health_context;

/* The most ranks a report describes. */
#define HEALTH_MAX_RANKS 8

typedef struct health_run {
    char trigger[16];               /* "startup" or "request" */
    double started_at, finished_at; /* Unix seconds */
    int host_ok;
    char host_error[512];
    health_host host;
    hp_gpu_report gpu;
    int world_size;                  /* ranks configured, 1..HEALTH_MAX_RANKS */
    json_t *peers[HEALTH_MAX_RANKS]; /* rank r's hardware as it sent it at join (a reference the
                                        run holds), NULL when missing; [0] unused */
    char transport[16];              /* the comm's name, "" with one rank or none yet */
    hp_check service[HEALTH_N_SERVICE];
} health_run;

/* The engine's numeric precision: "float32" on the "cpu" backend; on "cuda" what the pipeline
 * was opened with ("fp8": e4m3 GEMMs, bf16 activations; "bf16"); NULL for another backend. */
const char *health_precision_of(const char *backend, au_precision precision);

/* The per-node part of a rank's entry, from facts already gathered: {"host" (with "error"
 * when host_error is not NULL), "network", "gpu", "engine": {"backend", "precision"}}. A rank
 * entry is this object plus "rank", "role" and, where measured, "gemm", "gpu_seconds" and
 * "checks". NULL when out of memory. */
json_t *health_hardware_json(const health_host *host, const char *host_error, const hp_gpu_report *gpu,
                             const char *backend, const char *precision);

/* This node's hardware now, as health_hardware_json: the host facts from /sys/class and the
 * facts of GPU 0 (the one `auteur serve` probes) without running any benchmark; backend is
 * pipeline_backend_name() (NULL without an engine), precision an au_precision. It is what a
 * worker sends when it joins the cluster (server/cluster.h). NULL when out of memory. */
json_t *health_local_hardware_json(const char *backend, int precision);

/* The entry of rank (> 0) in "ranks": {"rank", "role": "worker", "joined": true} and the
 * keys of hardware (what it sent at join); with hardware NULL, {"rank", "role", "joined":
 * false, "reason": "rank N missing: not joined"}. NULL when out of memory. */
json_t *health_peer_rank_json(int rank, const json_t *hardware);

/* The run as the JSON object described above, with its verdict and reasons decided from
 * the run alone (the database as the run found it). NULL when out of memory. */
json_t *health_run_to_json(const health_run *run, const health_context *ctx);

/* State only the serving process knows at the moment of the report. */
typedef struct health_live {
    int db_ok; /* the job store answered just now */
    int engine_loaded;
    int queue_full;  /* unfinished jobs at the bound */
    int run_pending; /* a run is asked for or under way */
} health_live;

/* The verdict for run (a health_run_to_json object, or NULL before any run) and the live
 * state, world_size ranks configured (a rank with "joined": false, or without an entry, is
 * missing); each reason appended to `reasons` (a JSON array) as a string. */
health_verdict health_decide(const json_t *run, const health_live *live, int world_size, json_t *reasons);

/* ---- renderings of a report (the GET /health object) ---- */

/* The table `auteur health` prints: verdict and reasons, per rank facts, one line per check.
 * malloc'd, NULL when out of memory. */
char *health_table_render(const json_t *report);
/* Prometheus text of the report: auteur_health_verdict{verdict}, auteur_health_ready,
 * auteur_health_world_size, auteur_health_ranks_joined, auteur_health_rank_joined{rank},
 * auteur_health_comm_bus_bandwidth_gbs{transport} (when measured), auteur_health_check_value /
 * _threshold {check,rank,unit}, auteur_health_check_status {check,rank,status},
 * auteur_health_last_run_timestamp_seconds, auteur_health_last_run_seconds. Checks of the
 * service as a whole carry rank="all". malloc'd, NULL when out of memory. */
char *health_metrics_render(const json_t *report);

/* ---- the service (health_service.c) ---- */

typedef struct health_service health_service;

/* 1 when jobs are queued or generating (why filled), 0 when idle, negative on error. The
 * GPU benchmarks wait while it returns 1. */
typedef int (*health_busy_fn)(void *user, char *why, size_t cap);

/* The ranks of a multi-rank service as the health runner sees them: cluster_health_ops
 * (server/cluster.h) for `auteur serve`; tests pass their own. Each may be called from the runner
 * and from report threads at once. */
typedef struct health_cluster_ops {
    int (*world_size)(void *cl);        /* ranks configured, rank 0 included */
    int (*joined)(void *cl);            /* ranks joined now, rank 0 included */
    const char *(*comm_name)(void *cl); /* "nccl", "tcp" (static); NULL or "" while no comm */
    /* The hardware JSON rank sent when it joined (a new reference), NULL when it is not joined. */
    json_t *(*rank_report)(void *cl, int rank);
    /* All-reduce of `bytes` iters times between the joined ranks: bus bandwidth and seconds. */
    int (*comm_bench)(void *cl, size_t bytes, int iters, double *busbw_gbs, double *seconds, au_err *err);
} health_cluster_ops;

/* Bytes and repetitions of the comm_allreduce benchmark: 32 MiB is past the size where NCCL
 * reaches its peak bus bandwidth on one link; 10 of them take ~20 ms at 20 GB/s and ~3 s
 * on a 1 Gb/s fallback, so the check stays within the few seconds a run may take. */
#define HEALTH_COMM_BENCH_BYTES ((size_t)32 << 20)
#define HEALTH_COMM_BENCH_ITERS 10

/* The GPU part of a run, with hp_gpu_run's contract (kernels/health_probe.h). */
typedef int (*health_gpu_probe_fn)(int device, const hp_thresholds *t, hp_gate_fn gate, void *user,
                                   hp_gpu_report *out, au_err *err);

typedef struct health_service_opts {
    health_context ctx; /* strings copied */
    health_thresholds thresholds;
    const char *db_path; /* the SQLite database of the history (health_store.h) */
    health_busy_fn busy;
    void *busy_user;
    int gpu_device;
    health_gpu_probe_fn gpu_probe; /* NULL: hp_gpu_run (every GPU check SKIP in a build without
                                      CUDA); tests pass their own */
    int keep_runs;                 /* history rows kept; older ones are deleted after each run */
    atomic_int *measuring;         /* NULL, or set while a GPU benchmark runs (the dispatcher
                                      starts no job meanwhile: dispatch_opts.hold) */
    const health_cluster_ops *cluster_ops; /* NULL with one rank (world size 1) */
    void *cluster;                         /* their first argument */
} health_service_opts;

/* Open the history, start the runner thread and ask it for the start-up run. With a
 * cluster, the runner also looks every HEALTH_RANK_POLL_MS at how many ranks are joined and
 * asks for a run (trigger "request") when it differs from the last run's, so the comm check
 * follows a worker that joins or leaves. */
int health_service_start(health_service **out, const health_service_opts *opts, au_err *err);
/* Stop the runner (a run waiting for the queue gives up; one measuring finishes its current
 * check) and free everything. */
void health_service_stop(health_service *s);

#define HEALTH_RANK_POLL_MS 1000

/* Runs kept in the history by `auteur serve`. */
#define HEALTH_KEEP_RUNS 10000

/* How long GET /health?refresh=1 waits for the run it asks for. */
#define HEALTH_REFRESH_WAIT_S 20

/* Ask for a run ("request") unless one is already waiting, and wait for it up to
 * wait_seconds: 1 when it finished, 0 when it is still pending (the queue is busy). */
int health_service_run(health_service *s, double wait_seconds);

/* The health part of the report, to merge into the service's own fields: verdict, reasons,
 * ready {ok, reason}, thresholds, run {id, trigger, started_at, finished_at, seconds,
 * transport (the one the run's comm check used), pending, waiting_for}, world_size, ranks_joined and
 * transport (the cluster's now: "nccl", "tcp", null with one rank or no comm), ranks (0 from the last run,
 * the others now), checks (from the last run). NULL when out of memory. */
json_t *health_service_report(health_service *s, const health_live *live);

/* The last `limit` stored runs, newest first, each with its "id": {"object": "list", "data": [...]}. */
int health_service_history(health_service *s, int limit, json_t **out, au_err *err);

#endif
