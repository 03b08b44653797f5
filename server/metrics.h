/* metrics.h - Prometheus counters of the service, rendered as text format 0.0.4 at /metrics.
 *
 *   auteur_http_requests_total{route,method,status}   counter
 *   auteur_queue_depth                                 gauge (queued jobs)
 *   auteur_jobs{state}                                 gauge (rows by status)
 *   auteur_generation_seconds                          histogram (claim to files written)
 *   auteur_denoise_steps_total, auteur_denoise_seconds_total   counters
 *   auteur_denoise_steps_per_second                    gauge (the last finished job)
 *   auteur_jobs_finished_total{outcome}                counter (completed, failed, retried, canceled)
 *   auteur_jobs_ranks_total{mode,ranks}                counter (completed jobs by parallel mode and ranks)
 *   auteur_model_loaded                                gauge (1 or 0)
 * Routes are the patterns ("/v1/videos/{id}"), never raw paths, so the label set is bounded.
 */
#ifndef AU_METRICS_H
#define AU_METRICS_H

typedef struct metrics metrics;

int metrics_create(metrics **out);
void metrics_destroy(metrics *m);

/* route and method must be static strings. */
void metrics_count_request(metrics *m, const char *route, const char *method, int status);
/* A finished generation: wall seconds from claim to stored files, and the denoising part. */
void metrics_observe_generation(metrics *m, double seconds, int denoise_steps, double denoise_seconds);
/* outcome: "completed", "failed", "retried" or "canceled". */
void metrics_count_job(metrics *m, const char *outcome);

/* A completed job made by `ranks` ranks in parallel mode `mode` (a static string: "none", "cfg",
 * "ulysses"). */
void metrics_count_ranks(metrics *m, const char *mode, int ranks);

/* The exposition text; malloc'd, NULL when out of memory. job_counts is indexed by api_status. */
char *metrics_render(metrics *m, const int job_counts[4], int model_loaded);

#endif
