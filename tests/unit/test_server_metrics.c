// deps: au_server
/* test_server_metrics.c - the Prometheus exposition: request counters by route/method/
 * status, queue depth and jobs by state, the cumulative generation histogram, denoising
 * rate, job outcomes, and counts staying right under concurrent increments.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static void *hammer(void *arg) {
    metrics *m = arg;
    for (int i = 0; i < 10000; i++)
        metrics_count_request(m, "/v1/videos/{id}", "GET", 200);
    return NULL;
}

int main(void) {
    metrics *m;
    if (metrics_create(&m) != 0)
        return 1;
    metrics_count_request(m, "/v1/videos", "POST", 200);
    metrics_count_request(m, "/v1/videos", "POST", 200);
    metrics_count_request(m, "/v1/videos", "POST", 429);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, m);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    metrics_observe_generation(m, 1.5, 10, 1.0);   /* 10 steps/s */
    metrics_observe_generation(m, 45.0, 20, 40.0); /* 0.5 steps/s */
    metrics_count_job(m, "completed");
    metrics_count_job(m, "completed");
    metrics_count_job(m, "retried");
    int counts[4] = {3, 1, 2, 5};
    char *s = metrics_render(m, counts, 1);
    CHECK(s != NULL);
    CHECK(has_line(s, "auteur_http_requests_total{route=\"/v1/videos\",method=\"POST\",status=\"200\"} 2"));
    CHECK(has_line(s, "auteur_http_requests_total{route=\"/v1/videos\",method=\"POST\",status=\"429\"} 1"));
    CHECK(has_line(
        s, "auteur_http_requests_total{route=\"/v1/videos/{id}\",method=\"GET\",status=\"200\"} 40000"));
    CHECK(has_line(s, "# TYPE auteur_http_requests_total counter"));
    CHECK(has_line(s, "auteur_queue_depth 3"));
    CHECK(has_line(s, "auteur_jobs{state=\"queued\"} 3") &&
          has_line(s, "auteur_jobs{state=\"in_progress\"} 1"));
    CHECK(has_line(s, "auteur_jobs{state=\"completed\"} 2") &&
          has_line(s, "auteur_jobs{state=\"failed\"} 5"));
    CHECK(has_line(s, "# TYPE auteur_generation_seconds histogram"));
    CHECK(has_line(s, "auteur_generation_seconds_bucket{le=\"1\"} 0"));
    CHECK(has_line(s, "auteur_generation_seconds_bucket{le=\"2\"} 1"));
    CHECK(has_line(s, "auteur_generation_seconds_bucket{le=\"30\"} 1"));
    CHECK(has_line(s, "auteur_generation_seconds_bucket{le=\"60\"} 2"));
    CHECK(has_line(s, "auteur_generation_seconds_bucket{le=\"+Inf\"} 2"));
    CHECK(has_line(s, "auteur_generation_seconds_sum 46.500000"));
    CHECK(has_line(s, "auteur_generation_seconds_count 2"));
    CHECK(has_line(s, "auteur_denoise_steps_total 30"));
    CHECK(has_line(s, "auteur_denoise_seconds_total 41.000000"));
    CHECK(has_line(s, "auteur_denoise_steps_per_second 0.500000"));
    CHECK(has_line(s, "auteur_jobs_finished_total{outcome=\"completed\"} 2"));
    CHECK(has_line(s, "auteur_jobs_finished_total{outcome=\"retried\"} 1"));
    CHECK(has_line(s, "auteur_model_loaded 1"));
    free(s);
    metrics_destroy(m);
    if (failures) {
        fprintf(stderr, "test_server_metrics: %d checks failed\n", failures);
        return 1;
    }
    printf("test_server_metrics: ok\n");
    return 0;
}
