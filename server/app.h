/* app.h - the state one `auteur serve` process shares between its HTTP threads and its
 * dispatcher: configuration, job store, engine (NULL when the model failed to load),
 * dispatcher, metrics and the data directory layout (DATA/auteur.db, DATA/videos/).
 */
#ifndef AU_APP_H
#define AU_APP_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "dispatch.h"
#include "health.h"
#include "metrics.h"
#include "pipeline.h"
#include "store.h"

typedef struct app {
    const serve_config *cfg;
    store *st;
    au_pipeline *pipe;       /* NULL: no engine, POST /v1/videos answers 503 */
    const au_model_info *mi; /* the loaded model, or NULL */
    char model_error[512];   /* why pipe is NULL */
    dispatcher *disp;        /* NULL without an engine */
    metrics *met;
    char videos_dir[PATH_MAX + 16]; /* DATA/videos */
    int64_t started_at;
    atomic_int gpu_measuring; /* set by /health while a GPU benchmark runs: no job starts */
    health_service *health;   /* the /health runner, NULL until started */
    cluster *cluster;         /* rank 0's view of the workers; NULL with one rank or no engine */
} app;

#endif
