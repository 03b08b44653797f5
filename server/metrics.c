/* metrics.c - in-memory counters behind one mutex, rendered on scrape (metrics.h). */
#include "metrics.h"
#include "textbuf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 256
#define N_BUCKETS 12
#define MAX_RANK_SERIES 16 /* parallel modes x rank counts */

static const double bucket_bounds[N_BUCKETS] = {1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200};
static const char *const job_outcomes[] = {"completed", "failed", "retried", "canceled"};
static const char *const state_names[4] = {"queued", "in_progress", "completed", "failed"};

typedef struct series {
    const char *route, *method;
    int status;
    unsigned long long count;
} series;

typedef struct rank_series {
    const char *mode;
    int ranks;
    unsigned long long count;
} rank_series;

struct metrics {
    pthread_mutex_t mu;
    series requests[MAX_SERIES];
    int n_requests;
    unsigned long long dropped_series; /* requests beyond MAX_SERIES distinct label sets */
    unsigned long long gen_buckets[N_BUCKETS], gen_count;
    double gen_sum;
    unsigned long long steps_total;
    double denoise_seconds_total, last_steps_per_second;
    unsigned long long outcomes[4];
    rank_series by_ranks[MAX_RANK_SERIES];
    int n_by_ranks;
};

int metrics_create(metrics **out) {
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return 0;
}

void metrics_destroy(metrics *m) {
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void metrics_count_request(metrics *m, const char *route, const char *method, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    for (; i < m->n_requests; i++)
        if (m->requests[i].status == status && strcmp(m->requests[i].route, route) == 0 &&
            strcmp(m->requests[i].method, method) == 0)
            break;
    if (i == m->n_requests) {
        if (m->n_requests < MAX_SERIES)
            m->requests[m->n_requests++] = (series){route, method, status, 0};
        else
            i = -1;
    }
    if (i >= 0)
        m->requests[i].count++;
    else
        m->dropped_series++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe_generation(metrics *m, double seconds, int denoise_steps, double denoise_seconds) {
    pthread_mutex_lock(&m->mu);
    for (int b = 0; b < N_BUCKETS; b++)
        if (seconds <= bucket_bounds[b])
            m->gen_buckets[b]++;
    m->gen_count++;
    m->gen_sum += seconds;
    m->steps_total += (unsigned long long)denoise_steps;
    m->denoise_seconds_total += denoise_seconds;
    if (denoise_seconds > 0)
        m->last_steps_per_second = denoise_steps / denoise_seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_count_job(metrics *m, const char *outcome) {
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < 4; i++)
        if (strcmp(outcome, job_outcomes[i]) == 0)
            m->outcomes[i]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_count_ranks(metrics *m, const char *mode, int ranks) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_by_ranks && (m->by_ranks[i].ranks != ranks || strcmp(m->by_ranks[i].mode, mode) != 0))
        i++;
    if (i == m->n_by_ranks && i < MAX_RANK_SERIES)
        m->by_ranks[m->n_by_ranks++] = (rank_series){mode, ranks, 0};
    if (i < m->n_by_ranks)
        m->by_ranks[i].count++;
    pthread_mutex_unlock(&m->mu);
}

char *metrics_render(metrics *m, const int job_counts[4], int model_loaded) {
    textbuf t = {0};
    pthread_mutex_lock(&m->mu);
    textbuf_put(&t, "# HELP auteur_http_requests_total HTTP requests by route pattern, method and status.\n"
            "# TYPE auteur_http_requests_total counter\n");
    for (int i = 0; i < m->n_requests; i++)
        textbuf_put(&t, "auteur_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
            m->requests[i].route, m->requests[i].method, m->requests[i].status, m->requests[i].count);
    textbuf_put(&t,
        "# HELP auteur_http_requests_unlabelled_total Requests not counted above (label table full).\n"
        "# TYPE auteur_http_requests_unlabelled_total counter\nauteur_http_requests_unlabelled_total %llu\n",
        m->dropped_series);
    textbuf_put(&t,
        "# HELP auteur_queue_depth Jobs waiting to run.\n# TYPE auteur_queue_depth gauge\n"
        "auteur_queue_depth %d\n",
        job_counts[0]);
    textbuf_put(&t, "# HELP auteur_jobs Jobs in the store by state.\n# TYPE auteur_jobs gauge\n");
    for (int i = 0; i < 4; i++)
        textbuf_put(&t, "auteur_jobs{state=\"%s\"} %d\n", state_names[i], job_counts[i]);
    textbuf_put(&t, "# HELP auteur_jobs_finished_total Attempts ended, by outcome.\n"
            "# TYPE auteur_jobs_finished_total counter\n");
    for (int i = 0; i < 4; i++)
        textbuf_put(&t, "auteur_jobs_finished_total{outcome=\"%s\"} %llu\n", job_outcomes[i], m->outcomes[i]);
    textbuf_put(&t, "# HELP auteur_jobs_ranks_total Completed jobs by parallel mode and the ranks that made them.\n"
            "# TYPE auteur_jobs_ranks_total counter\n");
    for (int i = 0; i < m->n_by_ranks; i++)
        textbuf_put(&t, "auteur_jobs_ranks_total{mode=\"%s\",ranks=\"%d\"} %llu\n", m->by_ranks[i].mode,
            m->by_ranks[i].ranks, m->by_ranks[i].count);
    textbuf_put(&t, "# HELP auteur_generation_seconds Time from claiming a job to its files being stored.\n"
            "# TYPE auteur_generation_seconds histogram\n");
    for (int b = 0; b < N_BUCKETS; b++)
        textbuf_put(&t, "auteur_generation_seconds_bucket{le=\"%g\"} %llu\n", bucket_bounds[b], m->gen_buckets[b]);
    textbuf_put(&t, "auteur_generation_seconds_bucket{le=\"+Inf\"} %llu\n", m->gen_count);
    textbuf_put(&t, "auteur_generation_seconds_sum %.6f\nauteur_generation_seconds_count %llu\n", m->gen_sum,
        m->gen_count);
    textbuf_put(&t,
        "# HELP auteur_denoise_steps_total Denoising steps run by finished jobs.\n"
        "# TYPE auteur_denoise_steps_total counter\nauteur_denoise_steps_total %llu\n",
        m->steps_total);
    textbuf_put(&t,
        "# HELP auteur_denoise_seconds_total Time spent in those steps.\n"
        "# TYPE auteur_denoise_seconds_total counter\nauteur_denoise_seconds_total %.6f\n",
        m->denoise_seconds_total);
    textbuf_put(&t,
        "# HELP auteur_denoise_steps_per_second Denoising rate of the last finished job.\n"
        "# TYPE auteur_denoise_steps_per_second gauge\nauteur_denoise_steps_per_second %.6f\n",
        m->last_steps_per_second);
    pthread_mutex_unlock(&m->mu);
    textbuf_put(&t,
        "# HELP auteur_model_loaded Whether an engine is loaded (1) or not (0).\n"
        "# TYPE auteur_model_loaded gauge\nauteur_model_loaded %d\n",
        model_loaded ? 1 : 0);
    return textbuf_finish(&t);
}
