/* health_store.h - the /health history in SQLite (migrations/0002_health.sql).
 *
 * Its own connection to the service's database (DATA/auteur.db, WAL mode, so runs are written
 * while the job store works), behind a mutex; statements prepared once at open. Each run is
 * one row of health_runs: its times, trigger, verdict, the rank-0 headline figures
 * (memory_bandwidth_gbs, gemm_fp16_tflops, gemm_fp8_tflops; NULL when not measured) and the
 * run's whole JSON. The database_writable check rewrites the single row of health_write_probe.
 */
#ifndef AU_HEALTH_STORE_H
#define AU_HEALTH_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "status.h"

typedef struct health_store health_store;

/* Open path (creating it if needed), set WAL and the busy timeout, apply the embedded
 * migrations (a no-op when the job store already did) and prepare the statements. */
int health_store_open(health_store **out, const char *path, au_err *err);
void health_store_close(health_store *s);

/* Rewrite the probe row with `now` and commit; *ms is the time the committed write took. */
int health_store_probe_write(health_store *s, double now, double *ms, au_err *err);

/* Store a run (a health_run_to_json object) and receive its row id; then delete all but the
 * newest `keep` rows (keep <= 0 keeps every row). AU_EINVAL when run lacks its times,
 * trigger or verdict. */
int health_store_insert(health_store *s, const json_t *run, int keep, int64_t *id, au_err *err);

/* The newest `limit` runs (1..1000), newest first, each the stored object with "id" added. */
int health_store_history(health_store *s, int limit, json_t **out, au_err *err);

#endif
