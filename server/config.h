/* config.h - command-line flags and AUTEUR_* environment variables of every subcommand.
 *
 * Each subcommand has a table of options; a value comes from its flag (--name VALUE or
 * --name=VALUE), else from its environment variable, else the default. Every value is
 * checked (type and range) and a bad one is a usage error naming the flag or variable.
 * Parsing returns CFG_RUN, CFG_EXIT (help or version printed) or CFG_USAGE (message in err;
 * main exits 2).
 */
#ifndef AU_CONFIG_H
#define AU_CONFIG_H

#include <limits.h>
#include <stdio.h>

#include "pipeline.h"
#include "status.h"

#define CFG_MAX_KEYS 16
#define CFG_KEY_SIZE 256

enum { CFG_RUN = 0, CFG_EXIT = 1, CFG_USAGE = 2 };

#define CFG_TOKEN_SIZE 1024

/* The cluster options serve and worker share (issue 7). */
typedef struct cluster_config {
    int world_size; /* 1 = no cluster */
    int rank;
    char rendezvous[300];             /* HOST:PORT: rank 0 listens there, workers connect */
    char token[CFG_TOKEN_SIZE];       /* from --cluster-token, or read from --cluster-token-file */
    int heartbeat_timeout_seconds;
} cluster_config;

typedef struct serve_config {
    char host[256];
    int port; /* 0 = any free port (printed at start-up) */
    char data_dir[PATH_MAX];
    char model_dir[PATH_MAX];
    char api_keys[CFG_MAX_KEYS][CFG_KEY_SIZE];
    int n_api_keys;
    int max_queue; /* unfinished jobs (queued + in progress) before 429 */
    au_device device;
    au_precision precision;
    int threads; /* engine CPU threads, 0 = all cores */
    int http_threads;
    int lease_seconds;
    int shutdown_grace_seconds; /* how long SIGTERM waits for the running job */
    double retention_hours;     /* finished videos are deleted after this; 0 = kept */
    long long max_body_bytes;
    char health_thresholds[PATH_MAX]; /* JSON file overriding the /health thresholds; "" = defaults */
    cluster_config cluster;
    char parallel[16]; /* auto, cfg, ulysses, none */
    char comm[8];      /* auto, nccl, tcp */
} serve_config;

typedef struct worker_config {
    cluster_config cluster;
    char model_dir[PATH_MAX];
    au_device device;
    au_precision precision;
    int threads;
    int reconnect_seconds; /* the longest pause between attempts to reach rank 0 */
} worker_config;

typedef struct generate_config {
    char prompt[8192];
    char negative_prompt[8192];
    int has_negative_prompt;
    char model_dir[PATH_MAX];
    char size[32]; /* "" = the model's default */
    int frames, fps, steps;
    double seconds, guidance_scale, shift; /* < 0 = unset */
    char sampler[16];
    long long seed;            /* -1 = random */
    char noise_path[PATH_MAX]; /* "" = Philox noise from the seed */
    char output[PATH_MAX];
    char thumbnail[PATH_MAX]; /* "" = none */
    au_device device;
    au_precision precision;
    int threads;
} generate_config;

typedef struct data_config {
    char data_dir[PATH_MAX];
} data_config;

typedef struct health_config {
    char host[256];
    int port;
    int timeout_seconds;
    int json;    /* print the JSON report (the default when stdout is not a terminal) */
    int table;   /* print the table (the default on a terminal) */
    int refresh; /* ask for a fresh run first (GET /health?refresh=1) */
} health_config;

int config_serve(serve_config *c, int argc, char **argv, au_err *err);
int config_generate(generate_config *c, int argc, char **argv, au_err *err);
int config_migrate(data_config *c, int argc, char **argv, au_err *err);
int config_health(health_config *c, int argc, char **argv, au_err *err);
int config_worker(worker_config *c, int argc, char **argv, au_err *err);

/* The top-level usage text. */
void config_print_usage(FILE *f);

#endif
