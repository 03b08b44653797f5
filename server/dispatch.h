/* dispatch.h - the dispatcher: one thread that feeds queued jobs to the engine, FIFO.
 *
 * Loop: requeue jobs whose lease ran out, delete videos past their expiry, claim the oldest
 * queued job, run pipeline_generate with a progress callback that writes progress (0-99,
 * 100 on completion) and extends the lease at every step, encode DATA/videos/<id>.part.mp4
 * and <id>.part.jpg, rename them to <id>.mp4 / <id>.jpg, then mark the row completed. A
 * keeper thread renews the lease between steps too, so a slow step never loses its job.
 *
 * With a cluster (cluster.h) whose worker is joined, a job runs on both ranks in the server's
 * --parallel mode (auto: pipeline_parallel_auto; a mode the job cannot use: alone, with a log
 * line); the worker is admitted between jobs. A job whose ranked run fails with AU_ECOMM (the
 * worker lost) runs again at once on rank 0 alone, in the same attempt. The mode and the number
 * of ranks that made each video are logged and counted (auteur_jobs_ranks_total).
 *
 * Errors: AU_EINVAL / AU_EUNSUPPORTED / AU_EFORMAT fail the job at once; anything else is
 * retried up to STORE_MAX_ATTEMPTS attempts. A failed or cancelled job leaves no file:
 * partial files are removed, and files renamed into place for a job deleted meanwhile are
 * removed when the final store update finds the row gone.
 */
#ifndef AU_DISPATCH_H
#define AU_DISPATCH_H

#include <stdatomic.h>
#include "api/video.h"
#include "cluster.h"
#include "metrics.h"
#include "pipeline.h"
#include "status.h"
#include "store.h"

typedef struct dispatcher dispatcher;

typedef struct dispatch_opts {
    store *st;
    au_pipeline *pipe;
    metrics *met; /* may be NULL */
    const char *videos_dir;
    const char *owner; /* lease owner name of this process */
    int lease_seconds;
    int max_attempts;
    double retention_hours; /* 0 = finished videos are kept */
    atomic_int *hold;       /* NULL, or non-zero while no job may start (a /health benchmark) */
    cluster *cluster;       /* NULL with one rank */
    const char *parallel;   /* with a cluster: "auto", "cfg", "ulysses" or "none" */
} dispatch_opts;

int dispatch_start(dispatcher **out, const dispatch_opts *opts, au_err *err);
/* A job was queued: wake the thread. */
void dispatch_notify(dispatcher *d);
/* The video was deleted: if it is the running job, stop the engine at its next step. */
void dispatch_cancel(dispatcher *d, const char *id);
/* Claim nothing more; give the running job up to grace_seconds to finish, then stop it at
 * its next step and put it back in the queue (not counted as an attempt). Returns 0 with d
 * freed, or AU_EBUSY when the engine did not stop within a further 10 s: the job was put
 * back from here and d must be left alone (the process is about to exit). */
int dispatch_stop(dispatcher *d, int grace_seconds);

/* Paths of a video's files in videos_dir ("<dir>/<id>.mp4", "<dir>/<id>.jpg"). */
void dispatch_video_path(const char *videos_dir, const char *id, char *out, size_t cap);
void dispatch_thumbnail_path(const char *videos_dir, const char *id, char *out, size_t cap);
/* Remove a video's files, finished or partial; missing files are not an error. */
void dispatch_remove_files(const char *videos_dir, const char *id);
/* Remove every partial file (*.part.*) left in videos_dir by a process that died. */
int dispatch_clean_partials(const char *videos_dir, int *n_removed, au_err *err);

#endif
