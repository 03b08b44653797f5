/* config.c - option tables and the one parser behind every subcommand (config.h).
 *
 * Order of precedence: flag > environment variable > default. Repeatable --api-key flags
 * replace the keys of AUTEUR_API_KEYS (a comma-separated list) rather than adding to them.
 * Switches (OPT_FLAG) take no value on the command line; from the environment they read
 * 1/true/yes or 0/false/no.
 */
#include "config.h"
#include "cluster_proto.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef AUTEUR_VERSION
#define AUTEUR_VERSION "dev"
#endif
#ifndef AUTEUR_DEFAULT_MODEL_DIR
#define AUTEUR_DEFAULT_MODEL_DIR "models/tiny-random"
#endif

typedef enum opt_kind { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_LL, OPT_KEYS, OPT_DEVICE, OPT_PRECISION, OPT_FLAG } opt_kind;

typedef struct opt {
    const char *flag;       /* "--port" */
    const char *short_flag; /* "-o" or NULL */
    const char *env;        /* "AUTEUR_PORT" or NULL */
    opt_kind kind;
    void *target;
    size_t cap;      /* OPT_STR: buffer size */
    double min, max; /* numeric kinds */
    int *given;      /* set to 1 when a value was supplied (may be NULL) */
    const char *metavar;
    const char *help;
} opt;

typedef struct command {
    const char *name;    /* "serve" */
    const char *summary; /* one line */
    const opt *opts;
    int n_opts;
} command;

static int set_string(const opt *o, const char *src, const char *value, au_err *err) {
    if (strlen(value) >= o->cap)
        return au_errf(err, CFG_USAGE, "%s: value is longer than %zu bytes", src, o->cap - 1);
    memcpy(o->target, value, strlen(value) + 1);
    return 0;
}

static int add_key(serve_config *c, const char *src, const char *key, size_t len, au_err *err) {
    if (len == 0)
        return au_errf(err, CFG_USAGE, "%s: an API key must not be empty", src);
    if (len >= CFG_KEY_SIZE)
        return au_errf(err, CFG_USAGE, "%s: an API key is longer than %d bytes", src, CFG_KEY_SIZE - 1);
    if (c->n_api_keys >= CFG_MAX_KEYS)
        return au_errf(err, CFG_USAGE, "%s: at most %d API keys", src, CFG_MAX_KEYS);
    memcpy(c->api_keys[c->n_api_keys], key, len);
    c->api_keys[c->n_api_keys++][len] = '\0';
    return 0;
}

/* Assign one value; src names where it came from ("--port" or "AUTEUR_PORT"). */
static int set_value(const opt *o, const char *src, const char *value, au_err *err) {
    char *end;
    switch (o->kind) {
    case OPT_STR: return set_string(o, src, value, err);
    case OPT_INT:
    case OPT_LL: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno == ERANGE || v < o->min || v > o->max)
            return au_errf(err, CFG_USAGE, "%s: expected an integer from %.0f to %.0f, got \"%s\"", src,
                           o->min, o->max, value);
        if (o->kind == OPT_INT)
            *(int *)o->target = (int)v;
        else
            *(long long *)o->target = v;
        return 0;
    }
    case OPT_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || errno == ERANGE || !isfinite(v) || v < o->min || v > o->max)
            return au_errf(err, CFG_USAGE, "%s: expected a number from %g to %g, got \"%s\"", src, o->min,
                           o->max, value);
        *(double *)o->target = v;
        return 0;
    }
    case OPT_KEYS: { /* comma-separated */
        serve_config *c = o->target;
        for (const char *p = value;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            int rc = add_key(c, src, p, len, err);
            if (rc)
                return rc;
            if (!comma)
                return 0;
            p = comma + 1;
        }
    }
    case OPT_DEVICE: {
        static const char *const names[] = {"auto", "cpu", "cuda"};
        static const au_device devs[] = {AU_DEVICE_AUTO, AU_DEVICE_CPU, AU_DEVICE_CUDA};
        for (int i = 0; i < 3; i++)
            if (strcmp(value, names[i]) == 0) {
                *(au_device *)o->target = devs[i];
                return 0;
            }
        return au_errf(err, CFG_USAGE, "%s: expected auto, cpu or cuda, got \"%s\"", src, value);
    }
    case OPT_PRECISION:
        if (strcmp(value, "fp8") == 0 || strcmp(value, "bf16") == 0) {
            *(au_precision *)o->target = value[0] == 'f' ? AU_PRECISION_FP8 : AU_PRECISION_BF16;
            return 0;
        }
        return au_errf(err, CFG_USAGE, "%s: expected fp8 or bf16, got \"%s\"", src, value);
    case OPT_FLAG: {
        static const char *const on[] = {"1", "true", "yes"}, *const off[] = {"0", "false", "no"};
        for (int i = 0; i < 3; i++) {
            if (strcmp(value, on[i]) == 0 || strcmp(value, off[i]) == 0) {
                *(int *)o->target = strcmp(value, on[i]) == 0;
                return 0;
            }
        }
        return au_errf(err, CFG_USAGE, "%s: expected 1, true, yes, 0, false or no, got \"%s\"", src, value);
    }
    }
    return au_errf(err, CFG_USAGE, "%s: unknown option kind", src);
}

static void print_help(FILE *f, const command *cmd) {
    fprintf(f, "usage: auteur %s [options]\n\n%s\n\noptions:\n", cmd->name, cmd->summary);
    for (int i = 0; i < cmd->n_opts; i++) {
        const opt *o = &cmd->opts[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s %s", o->short_flag ? o->short_flag : "",
                 o->short_flag ? ", " : "", o->flag, o->metavar);
        fprintf(f, "  %-30s %s", left, o->help);
        if (o->env)
            fprintf(f, " [env %s]", o->env);
        fputc('\n', f);
    }
    fprintf(f, "  %-30s %s\n  %-30s %s\n", "-h, --help", "show this help", "--version", "print the version");
}

static int parse(const command *cmd, int argc, char **argv, au_err *err) {
    int rc;
    for (int i = 0; i < cmd->n_opts; i++) {
        const opt *o = &cmd->opts[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && *v) {
            if ((rc = set_value(o, o->env, v, err)))
                return rc;
            if (o->given)
                *o->given = 1;
        }
    }
    int keys_from_flags = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout, cmd);
            return CFG_EXIT;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("auteur %s\n", AUTEUR_VERSION);
            return CFG_EXIT;
        }
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const opt *o = NULL;
        for (int i = 0; i < cmd->n_opts && !o; i++) {
            const opt *c = &cmd->opts[i];
            if ((strlen(c->flag) == name_len && strncmp(arg, c->flag, name_len) == 0) ||
                (!eq && c->short_flag && strcmp(arg, c->short_flag) == 0))
                o = c;
        }
        if (!o) {
            if (arg[0] == '-')
                return au_errf(err, CFG_USAGE, "auteur %s: unknown option %.*s (see auteur %s --help)",
                               cmd->name, (int)name_len, arg, cmd->name);
            return au_errf(err, CFG_USAGE, "auteur %s: unexpected argument \"%s\" (see auteur %s --help)",
                           cmd->name, arg, cmd->name);
        }
        const char *value = eq ? eq + 1 : NULL;
        if (o->kind == OPT_FLAG) {
            if (value)
                return au_errf(err, CFG_USAGE, "auteur %s: %s takes no value", cmd->name, o->flag);
            value = "1";
        }
        if (!value) {
            if (a + 1 >= argc)
                return au_errf(err, CFG_USAGE, "auteur %s: %s needs a value (%s)", cmd->name, o->flag,
                               o->metavar);
            value = argv[++a];
        }
        if (o->kind == OPT_KEYS && !keys_from_flags) {
            ((serve_config *)o->target)->n_api_keys = 0; /* flags replace the environment's keys */
            keys_from_flags = 1;
        }
        if ((rc = set_value(o, o->flag, value, err)))
            return rc;
        if (o->given)
            *o->given = 1;
    }
    return CFG_RUN;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The engine's options, the same rows in `serve` and `generate` (c: a config with
 * device, precision and threads). */
#define ENGINE_OPTIONS(c)                                                                                    \
    {"--device", NULL, "AUTEUR_DEVICE", OPT_DEVICE, &(c)->device, 0, 0, 0, NULL, "auto|cpu|cuda",             \
     "compute device (default auto)"},                                                                      \
    {"--precision", NULL, "AUTEUR_PRECISION", OPT_PRECISION, &(c)->precision, 0, 0, 0, NULL, "fp8|bf16",     \
     "GPU matrix-product precision (default fp8; the CPU is always float32)"},                               \
    {"--threads", NULL, "AUTEUR_THREADS", OPT_INT, &(c)->threads, 0, 0, 4096, NULL, "N",                     \
     "engine CPU threads (default 0 = all cores)"}

/* The cluster's rows, the same in `serve` and `worker` (c: a cluster_config; token_file: a
 * PATH_MAX buffer; world_help, rank_help: the --world-size and --rank lines). */
#define CLUSTER_OPTIONS(c, token_file, world_help, rank_help)                                                \
    {"--world-size", NULL, "AUTEUR_WORLD_SIZE", OPT_INT, &(c)->world_size, 0, 1, 2, NULL, "N", world_help},   \
    {"--rank", NULL, "AUTEUR_RANK", OPT_INT, &(c)->rank, 0, 0, 1, NULL, "N", rank_help},                      \
    {"--rendezvous", NULL, "AUTEUR_RENDEZVOUS", OPT_STR, (c)->rendezvous, sizeof(c)->rendezvous, 0, 0, NULL,  \
     "HOST:PORT", "rank 0's cluster address: rank 0 listens there, workers connect to it"},                  \
    {"--cluster-token", NULL, "AUTEUR_CLUSTER_TOKEN", OPT_STR, (c)->token, sizeof(c)->token, 0, 0, NULL,      \
     "TOKEN", "the ranks' shared secret (prefer --cluster-token-file)"},                                     \
    {"--cluster-token-file", NULL, "AUTEUR_CLUSTER_TOKEN_FILE", OPT_STR, token_file, PATH_MAX, 0, 0, NULL,    \
     "FILE", "file holding the cluster token (surrounding whitespace ignored)"},                             \
    {"--heartbeat-timeout", NULL, "AUTEUR_HEARTBEAT_TIMEOUT", OPT_INT, &(c)->heartbeat_timeout_seconds, 0, 1, \
     600, NULL, "SECONDS", "a rank silent this long is lost: its job goes on without it (default 5)"}

#define CLUSTER_TOKEN_MIN_CHARS 16

/* "HOST:PORT" or "[V6]:PORT" with a port from min_port to 65535. */
static int check_rendezvous(const char *value, int min_port, au_err *err) {
    char host[256], port[8], *end;
    long number = cproto_split_address(value, host, port, err) == 0 ? strtol(port, &end, 10) : -1;
    if (number < min_port || number > 65535 || *end)
        return au_errf(err, CFG_USAGE, "--rendezvous: expected HOST:PORT with a port from %d to 65535, got \"%s\"",
                       min_port, value);
    return 0;
}

/* The token from the file, surrounding whitespace removed. */
static int read_token_file(const char *path, char *token, size_t cap, au_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return au_errf(err, CFG_USAGE, "--cluster-token-file %s: %s", path, strerror(errno));
    size_t n = fread(token, 1, cap, f);
    int too_long = n == cap, bad = ferror(f);
    fclose(f);
    if (bad || too_long)
        return au_errf(err, CFG_USAGE, "--cluster-token-file %s: %s", path,
                       bad ? "cannot be read" : "longer than a token may be");
    token[n] = '\0';
    while (n > 0 && isspace((unsigned char)token[n - 1]))
        token[--n] = '\0';
    size_t lead = strspn(token, " \t\r\n");
    memmove(token, token + lead, n - lead + 1);
    return 0;
}

/* The checks both roles share once the cluster options are parsed. */
static int check_cluster(const char *cmd, cluster_config *c, const char *token_file, int min_port, au_err *err) {
    if (c->world_size < 2)
        return 0;
    if (c->token[0] && token_file[0])
        return au_errf(err, CFG_USAGE, "auteur %s: give --cluster-token or --cluster-token-file, not both", cmd);
    if (token_file[0]) {
        int rc = read_token_file(token_file, c->token, sizeof c->token - 1, err);
        if (rc)
            return rc;
    }
    if (!c->token[0])
        return au_errf(err, CFG_USAGE,
                       "auteur %s: --world-size %d needs a cluster token (--cluster-token-file FILE or "
                       "AUTEUR_CLUSTER_TOKEN_FILE)",
                       cmd, c->world_size);
    if (strlen(c->token) < CLUSTER_TOKEN_MIN_CHARS)
        return au_errf(err, CFG_USAGE,
                       "auteur %s: the cluster token must be at least %d characters (make one with `openssl rand "
                       "-hex 32`)",
                       cmd, CLUSTER_TOKEN_MIN_CHARS);
    if (!c->rendezvous[0])
        return au_errf(err, CFG_USAGE, "auteur %s: --world-size %d needs --rendezvous HOST:PORT", cmd,
                       c->world_size);
    return check_rendezvous(c->rendezvous, min_port, err);
}

static void cluster_defaults(cluster_config *c, int rank) {
    c->world_size = 1;
    c->rank = rank;
    c->heartbeat_timeout_seconds = 5;
}

int config_serve(serve_config *c, int argc, char **argv, au_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    snprintf(c->data_dir, sizeof c->data_dir, "./auteur-data");
    snprintf(c->model_dir, sizeof c->model_dir, "%s", AUTEUR_DEFAULT_MODEL_DIR);
    c->max_queue = 100;
    c->http_threads = 4;
    c->lease_seconds = 60;
    c->shutdown_grace_seconds = 30;
    c->max_body_bytes = 1 << 20;
    cluster_defaults(&c->cluster, 0);
    snprintf(c->parallel, sizeof c->parallel, "auto");
    snprintf(c->comm, sizeof c->comm, "auto");
    char token_file[PATH_MAX] = "";
    const opt opts[] = {
        {"--host", NULL, "AUTEUR_HOST", OPT_STR, c->host, sizeof c->host, 0, 0, NULL, "ADDR",
         "address to listen on (default 127.0.0.1)"},
        {"--port", NULL, "AUTEUR_PORT", OPT_INT, &c->port, 0, 0, 65535, NULL, "N",
         "TCP port (default 8080; 0 = any free port, printed at start-up)"},
        {"--data-dir", NULL, "AUTEUR_DATA_DIR", OPT_STR, c->data_dir, sizeof c->data_dir, 0, 0, NULL, "DIR",
         "database and videos (default ./auteur-data)"},
        {"--model", NULL, "AUTEUR_MODEL", OPT_STR, c->model_dir, sizeof c->model_dir, 0, 0, NULL, "DIR",
         "model folder (default: the embedded tiny model)"},
        {"--api-key", NULL, "AUTEUR_API_KEYS", OPT_KEYS, c, 0, 0, 0, NULL, "KEY",
         "require this bearer key (repeatable; the variable takes a comma-separated list)"},
        {"--max-queue", NULL, "AUTEUR_MAX_QUEUE", OPT_INT, &c->max_queue, 0, 1, 1000000, NULL, "N",
         "unfinished jobs accepted before 429 (default 100)"},
        ENGINE_OPTIONS(c),
        {"--http-threads", NULL, "AUTEUR_HTTP_THREADS", OPT_INT, &c->http_threads, 0, 1, 256, NULL, "N",
         "HTTP worker threads (default 4)"},
        {"--lease-seconds", NULL, "AUTEUR_LEASE_SECONDS", OPT_INT, &c->lease_seconds, 0, 3, 86400, NULL, "N",
         "a running job's lease, renewed while its process lives (default 60)"},
        {"--shutdown-grace", NULL, "AUTEUR_SHUTDOWN_GRACE", OPT_INT, &c->shutdown_grace_seconds, 0, 0, 86400,
         NULL, "SECONDS", "on SIGTERM, wait this long for the running job before requeueing it (default 30)"},
        {"--retention-hours", NULL, "AUTEUR_RETENTION_HOURS", OPT_DOUBLE, &c->retention_hours, 0, 0, 1e6,
         NULL, "H", "delete finished videos after this many hours (default 0 = keep)"},
        {"--max-body", NULL, "AUTEUR_MAX_BODY", OPT_LL, &c->max_body_bytes, 0, 1024, 1 << 30, NULL, "BYTES",
         "largest request body accepted, else 413 (default 1048576)"},
        {"--health-thresholds", NULL, "AUTEUR_HEALTH_THRESHOLDS", OPT_STR, c->health_thresholds,
         sizeof c->health_thresholds, 0, 0, NULL, "FILE",
         "JSON object overriding /health thresholds, e.g. {\"memory_bandwidth_gbs\": 80, "
         "\"gemm_fp16_tflops\": 10}"},
        CLUSTER_OPTIONS(&c->cluster, token_file,
                        "ranks of the engine: 1 = this node alone, 2 = this rank 0 and a worker (default 1)",
                        "this process's rank: serve is always rank 0 (default 0)"),
        {"--parallel", NULL, "AUTEUR_PARALLEL", OPT_STR, c->parallel, sizeof c->parallel, 0, 0, NULL,
         "auto|cfg|ulysses|none", "how a job is shared by the ranks joined (default auto: by the request)"},
        {"--comm", NULL, "AUTEUR_COMM", OPT_STR, c->comm, sizeof c->comm, 0, 0, NULL, "auto|nccl|tcp",
         "how tensors move between ranks (default auto: nccl on CUDA when NCCL loads, else tcp)"},
    };
    const command cmd = {"serve",
                         "Run the HTTP service: the OpenAI-style video API, a job queue and one engine (rank 0 of "
                         "a cluster with --world-size 2).",
                         opts, COUNT(opts)};
    int rc = parse(&cmd, argc, argv, err);
    if (rc != CFG_RUN)
        return rc;
    au_parallel mode;
    if (strcmp(c->parallel, "auto") != 0 && pipeline_parallel_from_name(c->parallel, &mode) != 0)
        return au_errf(err, CFG_USAGE, "--parallel: expected auto, cfg, ulysses or none, got \"%s\"", c->parallel);
    if (strcmp(c->comm, "auto") != 0 && strcmp(c->comm, "nccl") != 0 && strcmp(c->comm, "tcp") != 0)
        return au_errf(err, CFG_USAGE, "--comm: expected auto, nccl or tcp, got \"%s\"", c->comm);
    if (c->cluster.rank != 0)
        return au_errf(err, CFG_USAGE,
                       "auteur serve: --rank %d: serve is rank 0 (start `auteur worker` on the node of rank %d)",
                       c->cluster.rank, c->cluster.rank);
    return check_cluster("serve", &c->cluster, token_file, 0, err);
}

int config_worker(worker_config *c, int argc, char **argv, au_err *err) {
    memset(c, 0, sizeof *c);
    cluster_defaults(&c->cluster, 1);
    c->cluster.world_size = 2;
    snprintf(c->model_dir, sizeof c->model_dir, "%s", AUTEUR_DEFAULT_MODEL_DIR);
    c->reconnect_seconds = 5;
    char token_file[PATH_MAX] = "";
    const opt opts[] = {
        CLUSTER_OPTIONS(&c->cluster, token_file, "ranks of the engine, rank 0's --world-size (default 2)",
                        "this worker's rank (default 1)"),
        {"--model", NULL, "AUTEUR_MODEL", OPT_STR, c->model_dir, sizeof c->model_dir, 0, 0, NULL, "DIR",
         "model folder: the same as rank 0's (default: the embedded tiny model)"},
        ENGINE_OPTIONS(c),
        {"--reconnect-seconds", NULL, "AUTEUR_RECONNECT_SECONDS", OPT_INT, &c->reconnect_seconds, 0, 1, 3600, NULL,
         "SECONDS", "longest pause between attempts to reach rank 0 again (default 5)"},
    };
    const command cmd = {"worker",
                         "Run rank 1 of a cluster: connect to rank 0 (auteur serve --world-size 2) and compute "
                         "its share of every job until stopped.",
                         opts, COUNT(opts)};
    int rc = parse(&cmd, argc, argv, err);
    if (rc != CFG_RUN)
        return rc;
    if (c->cluster.world_size < 2)
        return au_errf(err, CFG_USAGE, "auteur worker: --world-size must be 2: a worker is one rank of a cluster");
    if (c->cluster.rank < 1 || c->cluster.rank >= c->cluster.world_size)
        return au_errf(err, CFG_USAGE, "auteur worker: --rank %d: a worker is rank 1 to %d (rank 0 is auteur serve)",
                       c->cluster.rank, c->cluster.world_size - 1);
    return check_cluster("worker", &c->cluster, token_file, 1, err);
}

int config_generate(generate_config *c, int argc, char **argv, au_err *err) {
    int has_prompt = 0;
    memset(c, 0, sizeof *c);
    snprintf(c->model_dir, sizeof c->model_dir, "%s", AUTEUR_DEFAULT_MODEL_DIR);
    snprintf(c->output, sizeof c->output, "video.mp4");
    c->seconds = c->guidance_scale = c->shift = -1;
    c->seed = -1;
    const opt opts[] = {
        {"--prompt", "-p", NULL, OPT_STR, c->prompt, sizeof c->prompt, 0, 0, &has_prompt, "TEXT",
         "what the video shows (required)"},
        {"--negative-prompt", NULL, NULL, OPT_STR, c->negative_prompt, sizeof c->negative_prompt, 0, 0,
         &c->has_negative_prompt, "TEXT", "what to avoid (default: the model's; \"\" for none)"},
        {"--model", NULL, "AUTEUR_MODEL", OPT_STR, c->model_dir, sizeof c->model_dir, 0, 0, NULL, "DIR",
         "model folder (default: the embedded tiny model)"},
        {"--size", NULL, NULL, OPT_STR, c->size, sizeof c->size, 0, 0, NULL, "WxH",
         "frame size (model default)"},
        {"--frames", NULL, NULL, OPT_INT, &c->frames, 0, 1, 100000, NULL, "N",
         "frame count, 4k+1 (model default)"},
        {"--seconds", NULL, NULL, OPT_DOUBLE, &c->seconds, 0, 0.001, 3600, NULL, "S",
         "duration, when --frames is not given"},
        {"--fps", NULL, NULL, OPT_INT, &c->fps, 0, 1, 120, NULL, "N", "frames per second (model default)"},
        {"--steps", NULL, NULL, OPT_INT, &c->steps, 0, 1, 10000, NULL, "N",
         "denoising steps (model default)"},
        {"--guidance-scale", NULL, NULL, OPT_DOUBLE, &c->guidance_scale, 0, 0, 50, NULL, "X",
         "classifier-free guidance (model default)"},
        {"--shift", NULL, NULL, OPT_DOUBLE, &c->shift, 0, 0.001, 100, NULL, "X",
         "flow shift (model default)"},
        {"--sampler", NULL, NULL, OPT_STR, c->sampler, sizeof c->sampler, 0, 0, NULL, "unipc|euler",
         "sampler (model default)"},
        {"--seed", NULL, NULL, OPT_LL, &c->seed, 0, 0, 9223372036854775807.0, NULL, "N",
         "noise seed (default random)"},
        {"--noise", NULL, NULL, OPT_STR, c->noise_path, sizeof c->noise_path, 0, 0, NULL, "FILE",
         "initial noise from a safetensors file (tensor \"noise\"), for comparisons"},
        {"--output", "-o", NULL, OPT_STR, c->output, sizeof c->output, 0, 0, NULL, "PATH",
         "the MP4 to write (default video.mp4)"},
        {"--thumbnail", NULL, NULL, OPT_STR, c->thumbnail, sizeof c->thumbnail, 0, 0, NULL, "PATH",
         "also write the first frame as .jpg or .png"},
        ENGINE_OPTIONS(c),
    };
    const command cmd = {"generate", "Make one video without a server, with a progress bar on a terminal.",
                         opts, COUNT(opts)};
    int rc = parse(&cmd, argc, argv, err);
    if (rc == CFG_RUN && !has_prompt)
        return au_errf(err, CFG_USAGE, "auteur generate: --prompt is required (see auteur generate --help)");
    if (rc == CFG_RUN && c->sampler[0] && strcmp(c->sampler, "unipc") != 0 &&
        strcmp(c->sampler, "euler") != 0)
        return au_errf(err, CFG_USAGE, "--sampler: expected unipc or euler, got \"%s\"", c->sampler);
    return rc;
}

int config_migrate(data_config *c, int argc, char **argv, au_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "./auteur-data");
    const opt opts[] = {
        {"--data-dir", NULL, "AUTEUR_DATA_DIR", OPT_STR, c->data_dir, sizeof c->data_dir, 0, 0, NULL, "DIR",
         "database and videos (default ./auteur-data)"},
    };
    const command cmd = {"migrate", "Create or upgrade the job database in the data directory, then exit.",
                         opts, COUNT(opts)};
    return parse(&cmd, argc, argv, err);
}

int config_health(health_config *c, int argc, char **argv, au_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    c->timeout_seconds = 10;
    const opt opts[] = {
        {"--host", NULL, "AUTEUR_HOST", OPT_STR, c->host, sizeof c->host, 0, 0, NULL, "ADDR",
         "the server's address (default 127.0.0.1)"},
        {"--port", NULL, "AUTEUR_PORT", OPT_INT, &c->port, 0, 1, 65535, NULL, "N",
         "the server's port (default 8080)"},
        {"--timeout", NULL, NULL, OPT_INT, &c->timeout_seconds, 0, 1, 3600, NULL, "SECONDS",
         "give up after this long (default 10)"},
        {"--json", NULL, NULL, OPT_FLAG, &c->json, 0, 0, 0, NULL, "", "print the JSON report"},
        {"--table", NULL, NULL, OPT_FLAG, &c->table, 0, 0, 0, NULL, "",
         "print the table (the default on a terminal; JSON otherwise)"},
        {"--refresh", NULL, NULL, OPT_FLAG, &c->refresh, 0, 0, 0, NULL, "",
         "run the hardware checks again first (they wait for running jobs)"},
    };
    const command cmd = {"health",
                         "Print the running server's /health report (verdict, per-rank hardware facts and "
                         "checks); exit 0 when it can work (READY or DEGRADED), 1 otherwise.",
                         opts, COUNT(opts)};
    int rc = parse(&cmd, argc, argv, err);
    if (rc == CFG_RUN && c->json && c->table)
        return au_errf(err, CFG_USAGE, "auteur health: --json and --table exclude each other");
    return rc;
}

void config_print_usage(FILE *f) {
    fprintf(f, "usage: auteur <command> [options]\n\n"
               "Auteur makes videos from text with Wan2.1 models and serves them over an\n"
               "OpenAI-compatible HTTP API.\n\n"
               "commands:\n"
               "  serve      run the HTTP service\n"
               "  generate   make one video without a server\n"
               "  migrate    create or upgrade the job database, then exit\n"
               "  health     print a running server's /health report (hardware checks, verdict)\n"
               "  worker     run rank 1 of a two-node engine, following auteur serve --world-size 2\n"
               "  dev        run one engine component on tensors from a file (parity checks)\n\n"
               "`auteur <command> --help` lists a command's options; --version prints the version.\n");
}
