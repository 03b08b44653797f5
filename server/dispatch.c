/* dispatch.c - the dispatcher thread and its lease keeper (dispatch.h).
 *
 * Shared state is under d->mu: the running job's id, its last progress, the stop flag and
 * the cancel reason. d->cancel is the flag pipeline_generate polls between steps.
 * Progress shown to clients: 0 while text is encoded, then floor(99 * step / steps) after
 * each denoising step, and 100 once the MP4 and thumbnail are stored.
 */
#include "dispatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "encode_mp4.h"

#define SWEEP_INTERVAL_S 1
#define HOLD_POLL_NS 20000000L /* 20 ms: how often a held dispatcher looks again */
#define EXPIRY_BATCH 64
/* After the grace period the engine is asked to stop; it stops at its next step. If even
 * that does not come within this time, the job is released from here and left behind. */
#define CANCEL_WAIT_S 10

enum { CANCEL_NONE = 0, CANCEL_DELETED, CANCEL_SHUTDOWN };

struct dispatcher {
    dispatch_opts o;
    char owner[128], videos_dir[4096], parallel[16];
    pthread_t thread, keeper;
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* new job, stop, or the running job ended */
    pthread_cond_t keeper_wake; /* stop, for the lease keeper */
    int stopping;
    int running; /* a job is being generated */
    char current[API_ID_SIZE];
    int progress;
    atomic_int cancel; /* polled by pipeline_generate */
    int cancel_reason;
    int lost; /* the store no longer has the job under our lease */
    double step0_time, last_step_time;
    int steps_done;
};

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t now_unix(void) {
    return (int64_t)time(NULL);
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
    va_list ap;
    char buf[1024];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "auteur: %s\n", buf);
}

void dispatch_video_path(const char *videos_dir, const char *id, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.mp4", videos_dir, id);
}

void dispatch_thumbnail_path(const char *videos_dir, const char *id, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.jpg", videos_dir, id);
}

static void part_path(const char *videos_dir, const char *id, const char *ext, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.part.%s", videos_dir, id, ext);
}

void dispatch_remove_files(const char *videos_dir, const char *id) {
    char path[4200];
    dispatch_video_path(videos_dir, id, path, sizeof path);
    unlink(path);
    dispatch_thumbnail_path(videos_dir, id, path, sizeof path);
    unlink(path);
    part_path(videos_dir, id, "mp4", path, sizeof path);
    unlink(path);
    part_path(videos_dir, id, "jpg", path, sizeof path);
    unlink(path);
}

int dispatch_clean_partials(const char *videos_dir, int *n_removed, au_err *err) {
    DIR *dir = opendir(videos_dir);
    *n_removed = 0;
    if (!dir)
        return au_errf(err, AU_EIO, "%s: %s", videos_dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strstr(e->d_name, ".part.")) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", videos_dir, e->d_name);
            if (unlink(path) == 0)
                (*n_removed)++;
        }
    }
    closedir(dir);
    return 0;
}

/* Flush a written file to disk before it is renamed into place. */
static int sync_file(const char *path, au_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return au_errf(err, AU_EIO, "%s: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : au_errf(err, AU_EIO, "fsync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* Progress from the engine: step 0 after text encoding, then 1..n_steps. */
static int on_progress(void *user, int step, int n_steps) {
    dispatcher *d = user;
    au_err err;
    int pct = n_steps > 0 ? (int)(99LL * step / n_steps) : 0;
    double t = now_mono();
    pthread_mutex_lock(&d->mu);
    char id[API_ID_SIZE];
    memcpy(id, d->current, sizeof id);
    d->progress = pct;
    if (step == 0)
        d->step0_time = t;
    d->last_step_time = t;
    d->steps_done = step;
    pthread_mutex_unlock(&d->mu);
    if (store_heartbeat(d->o.st, id, d->owner, pct, now_unix() + d->o.lease_seconds, &err) != 0) {
        pthread_mutex_lock(&d->mu);
        if (err.code == AU_ENOTFOUND) {
            d->lost = 1;
            d->cancel = 1;
        }
        pthread_mutex_unlock(&d->mu);
        if (err.code != AU_ENOTFOUND)
            log_line("%s: progress not recorded: %s", id, err.msg);
        return err.code == AU_ENOTFOUND;
    }
    return 0;
}

/* Renews the running job's lease every lease/3 seconds, whatever the engine is doing. */
static void *keeper_main(void *arg) {
    dispatcher *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += d->o.lease_seconds / 3 > 0 ? d->o.lease_seconds / 3 : 1;
        pthread_cond_timedwait(&d->keeper_wake, &d->mu, &ts);
        if (d->stopping || !d->running || d->lost)
            continue;
        char id[API_ID_SIZE];
        memcpy(id, d->current, sizeof id);
        int pct = d->progress;
        pthread_mutex_unlock(&d->mu);
        au_err err;
        int rc = store_heartbeat(d->o.st, id, d->owner, pct, now_unix() + d->o.lease_seconds, &err);
        pthread_mutex_lock(&d->mu);
        if (rc == AU_ENOTFOUND && d->running && strcmp(d->current, id) == 0) {
            d->lost = 1;
            d->cancel = 1;
        } else if (rc != 0 && rc != AU_ENOTFOUND) {
            log_line("%s: lease not renewed: %s", id, err.msg);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* The mode of a job on the ranks joined now: NONE when alone or when the server's mode cannot
 * run it. */
static au_parallel choose_mode(dispatcher *d, const char *id, const au_gen_params *resolved) {
    int world = d->o.cluster ? cluster_joined(d->o.cluster) : 1;
    au_parallel mode = AU_PARALLEL_NONE;
    if (world < 2)
        return AU_PARALLEL_NONE;
    if (strcmp(d->parallel, "auto") == 0)
        return pipeline_parallel_auto(d->o.pipe, resolved, world);
    au_err err;
    au_err_clear(&err);
    if (pipeline_parallel_from_name(d->parallel, &mode) != 0 ||
        (mode != AU_PARALLEL_NONE && pipeline_parallel_check(d->o.pipe, resolved, mode, world, &err) != 0)) {
        log_line("%s: parallel %s cannot run this job (%s); running it on rank 0 alone", id, d->parallel,
                 err.msg);
        return AU_PARALLEL_NONE;
    }
    return mode;
}

/* Generate on the ranks joined, or alone. When a rank is lost mid-job (AU_ECOMM) the job runs
 * again at once on rank 0 alone; *mode and *ranks say what made the video. */
static int generate(dispatcher *d, const api_video *job, const au_gen_params *params, au_video *video,
                    au_parallel *mode, int *ranks, au_err *err) {
    au_gen_params resolved = *params;
    *ranks = 1;
    *mode = AU_PARALLEL_NONE;
    int rc = pipeline_resolve_params(d->o.pipe, &resolved, err);
    if (rc)
        return rc;
    *mode = choose_mode(d, job->id, &resolved);
    if (*mode != AU_PARALLEL_NONE) {
        au_comm *comm;
        au_err end_err;
        rc = cluster_job_begin(d->o.cluster, job->id, &resolved, *mode, &comm, err);
        if (rc == 0) {
            rc = pipeline_generate_ranked(d->o.pipe, &resolved, comm, *mode, on_progress, d, &d->cancel, video, err);
            int end_rc = cluster_job_end(d->o.cluster, rc, &end_err);
            if (rc == 0) {
                if (end_rc != 0)
                    log_line("%s: rank 0 finished the video; %s", job->id, end_err.msg);
                *ranks = 2;
                return 0;
            }
            if (end_rc == AU_ECOMM) /* the worker's loss is the cause, not its symptom on rank 0 */
                *err = end_err;
            if ((rc != AU_ECOMM && end_rc != AU_ECOMM) || d->cancel)
                return rc;
            au_video_free(video);
        }
        log_line("%s: %s; running it on rank 0 alone", job->id, err->msg);
        *mode = AU_PARALLEL_NONE;
    }
    return pipeline_generate(d->o.pipe, &resolved, on_progress, d, &d->cancel, video, err);
}

static int retryable(int code) {
    return code != AU_EINVAL && code != AU_EUNSUPPORTED && code != AU_EFORMAT;
}

/* Encode the frames and move both files into place. */
static int store_files(dispatcher *d, const api_video *job, const au_video *video, au_err *err) {
    char mp4_part[4200], jpg_part[4200], mp4[4200], jpg[4200];
    part_path(d->videos_dir, job->id, "mp4", mp4_part, sizeof mp4_part);
    part_path(d->videos_dir, job->id, "jpg", jpg_part, sizeof jpg_part);
    dispatch_video_path(d->videos_dir, job->id, mp4, sizeof mp4);
    dispatch_thumbnail_path(d->videos_dir, job->id, jpg, sizeof jpg);
    au_mp4_opts mo = {.fps = job->fps, .crf = 0, .encoder = NULL};
    int rc;
    if ((rc = mp4_write(mp4_part, video, &mo, err)) || (rc = sync_file(mp4_part, err)) ||
        (rc = image_write(jpg_part, video->rgb, video->width, video->height, err)) ||
        (rc = sync_file(jpg_part, err)))
        return rc;
    if (rename(mp4_part, mp4) != 0 || rename(jpg_part, jpg) != 0)
        return au_errf(err, AU_EIO, "moving %s's files into place: %s", job->id, strerror(errno));
    return 0;
}

static void run_job(dispatcher *d, const api_video *job) {
    au_err err;
    au_err_clear(&err);
    au_gen_params params = {
        .prompt = job->prompt,
        .negative_prompt = job->negative_prompt, /* NULL = the model's default */
        .width = job->width,
        .height = job->height,
        .frames = job->frames,
        .steps = job->steps,
        .guidance_scale = (float)job->guidance_scale,
        .shift = (float)job->shift,
        .sampler = job->sampler,
        .seed = job->seed,
        .noise_path = NULL,
    };
    double t0 = now_mono();
    log_line("%s: attempt %d: %dx%d, %d frames, %d steps, seed %lld", job->id, job->attempts, job->width,
             job->height, job->frames, job->steps, (long long)job->seed);
    au_video video = {0};
    au_parallel mode;
    int ranks;
    int rc = generate(d, job, &params, &video, &mode, &ranks, &err);
    if (rc == 0)
        rc = store_files(d, job, &video, &err);
    au_video_free(&video);

    pthread_mutex_lock(&d->mu);
    int reason = d->cancel_reason, lost = d->lost;
    double denoise_s = d->last_step_time - d->step0_time;
    int steps_done = d->steps_done;
    pthread_mutex_unlock(&d->mu);

    if (rc == 0) {
        int64_t now = now_unix();
        int64_t expires = d->o.retention_hours > 0 ? now + (int64_t)(d->o.retention_hours * 3600.0 + 0.5) : 0;
        if (store_complete(d->o.st, job->id, d->owner, now, expires, &err) == 0) {
            double total = now_mono() - t0;
            if (d->o.met) {
                metrics_observe_generation(d->o.met, total, steps_done, denoise_s);
                metrics_count_job(d->o.met, "completed");
                metrics_count_ranks(d->o.met, pipeline_parallel_name(mode), ranks);
            }
            log_line("%s: completed in %.2f s (%.2f denoising steps/s) on %d rank%s (parallel %s)", job->id, total,
                     denoise_s > 0 ? steps_done / denoise_s : 0.0, ranks, ranks > 1 ? "s" : "",
                     pipeline_parallel_name(mode));
            return;
        }
        /* deleted while the files were being written: they go too */
        dispatch_remove_files(d->videos_dir, job->id);
        if (d->o.met)
            metrics_count_job(d->o.met, "canceled");
        log_line("%s: finished after it was deleted; files removed", job->id);
        return;
    }
    dispatch_remove_files(d->videos_dir, job->id);
    if (rc == AU_ECANCELED || lost) {
        if (d->o.met)
            metrics_count_job(d->o.met, "canceled");
        if (reason == CANCEL_SHUTDOWN && !lost) {
            if (store_release(d->o.st, job->id, d->owner, &err) == 0)
                log_line("%s: stopped for shutdown, back in the queue", job->id);
            else
                log_line("%s: stopped for shutdown: %s", job->id, err.msg);
        } else {
            log_line("%s: canceled (%s)", job->id, lost ? "deleted or lease lost" : err.msg);
        }
        return;
    }
    char message[sizeof err.msg];
    snprintf(message, sizeof message, "%s", err.msg);
    int requeued = 0;
    au_err serr;
    if (store_fail(d->o.st, job->id, d->owner, now_unix(), au_status_name(rc), message, retryable(rc),
                   d->o.max_attempts, &requeued, &serr) != 0) {
        log_line("%s: failed (%s) and could not be recorded: %s", job->id, message, serr.msg);
        return;
    }
    if (d->o.met)
        metrics_count_job(d->o.met, requeued ? "retried" : "failed");
    log_line("%s: attempt %d failed: %s%s", job->id, job->attempts, message, requeued ? "; requeued" : "");
}

/* Requeue lost leases and delete expired videos. */
static void sweep(dispatcher *d) {
    au_err err;
    int nr = 0, nf = 0;
    if (store_requeue_expired(d->o.st, now_unix(), d->o.max_attempts, &nr, &nf, &err) != 0)
        log_line("requeueing expired leases: %s", err.msg);
    else if (nr || nf)
        log_line("expired leases: %d job(s) requeued, %d failed", nr, nf);
    if (d->o.retention_hours <= 0)
        return;
    char ids[EXPIRY_BATCH][API_ID_SIZE];
    int n = 0;
    if (store_expired(d->o.st, now_unix(), ids, EXPIRY_BATCH, &n, &err) != 0) {
        log_line("listing expired videos: %s", err.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (store_delete(d->o.st, ids[i], NULL, &err) == 0) {
            dispatch_remove_files(d->videos_dir, ids[i]);
            log_line("%s: expired, deleted", ids[i]);
        }
    }
}

static void *dispatcher_main(void *arg) {
    dispatcher *d = arg;
    double last_sweep = 0;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        int stopping = d->stopping;
        pthread_mutex_unlock(&d->mu);
        if (stopping)
            break;
        if (now_mono() - last_sweep >= SWEEP_INTERVAL_S) {
            sweep(d);
            last_sweep = now_mono();
        }
        if (d->o.hold && atomic_load(d->o.hold)) { /* a /health benchmark is measuring */
            struct timespec pause = {0, HOLD_POLL_NS};
            nanosleep(&pause, NULL);
            continue;
        }
        if (d->o.cluster) /* a worker waiting to join gets its comm between jobs */
            cluster_admit(d->o.cluster);
        api_video job;
        au_err err;
        int claimed = store_claim(d->o.st, d->owner, now_unix(), d->o.lease_seconds, &job, &err);
        if (claimed < 0)
            log_line("claiming a job: %s", err.msg);
        if (claimed == 1) {
            pthread_mutex_lock(&d->mu);
            if (d->stopping) { /* stop arrived between the check and the claim */
                pthread_mutex_unlock(&d->mu);
                store_release(d->o.st, job.id, d->owner, &err);
                api_video_clear(&job);
                break;
            }
            memcpy(d->current, job.id, sizeof d->current);
            d->running = 1;
            d->progress = 0;
            d->cancel = 0;
            d->cancel_reason = CANCEL_NONE;
            d->lost = 0;
            d->step0_time = d->last_step_time = now_mono();
            d->steps_done = 0;
            pthread_mutex_unlock(&d->mu);
            run_job(d, &job);
            api_video_clear(&job);
            pthread_mutex_lock(&d->mu);
            d->running = 0;
            d->current[0] = '\0';
            pthread_cond_broadcast(&d->wake);
            pthread_mutex_unlock(&d->mu);
            continue;
        }
        /* nothing queued: sleep until notified, stopped, or the next sweep */
        pthread_mutex_lock(&d->mu);
        if (!d->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += SWEEP_INTERVAL_S;
            pthread_cond_timedwait(&d->wake, &d->mu, &ts);
        }
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

int dispatch_start(dispatcher **out, const dispatch_opts *opts, au_err *err) {
    *out = NULL;
    dispatcher *d = calloc(1, sizeof *d);
    if (!d)
        return au_errf(err, AU_ENOMEM, "dispatcher: out of memory");
    d->o = *opts;
    snprintf(d->owner, sizeof d->owner, "%s", opts->owner);
    snprintf(d->videos_dir, sizeof d->videos_dir, "%s", opts->videos_dir);
    snprintf(d->parallel, sizeof d->parallel, "%s", opts->parallel ? opts->parallel : "auto");
    d->o.owner = d->owner;
    d->o.videos_dir = d->videos_dir;
    if (d->o.max_attempts <= 0)
        d->o.max_attempts = STORE_MAX_ATTEMPTS;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->wake, NULL);
    pthread_cond_init(&d->keeper_wake, NULL);
    if (pthread_create(&d->thread, NULL, dispatcher_main, d) != 0) {
        free(d);
        return au_errf(err, AU_EIO, "dispatcher: cannot start its thread");
    }
    if (pthread_create(&d->keeper, NULL, keeper_main, d) != 0) {
        pthread_mutex_lock(&d->mu);
        d->stopping = 1;
        pthread_cond_broadcast(&d->wake);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
        free(d);
        return au_errf(err, AU_EIO, "dispatcher: cannot start the lease keeper");
    }
    *out = d;
    return 0;
}

void dispatch_notify(dispatcher *d) {
    pthread_mutex_lock(&d->mu);
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->mu);
}

void dispatch_cancel(dispatcher *d, const char *id) {
    int running = 0;
    pthread_mutex_lock(&d->mu);
    if (d->running && strcmp(d->current, id) == 0) {
        d->cancel_reason = CANCEL_DELETED;
        d->lost = 1;
        d->cancel = 1;
        running = 1;
    }
    pthread_mutex_unlock(&d->mu);
    if (running && d->o.cluster) /* the worker stops at the same step */
        cluster_job_cancel(d->o.cluster);
}

/* Wait on d->wake until the running job ends or `seconds` pass; d->mu held. */
static void wait_idle(dispatcher *d, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    while (d->running)
        if (pthread_cond_timedwait(&d->wake, &d->mu, &deadline) == ETIMEDOUT)
            break;
}

int dispatch_stop(dispatcher *d, int grace_seconds) {
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->wake);
    pthread_cond_broadcast(&d->keeper_wake);
    if (d->running) {
        log_line("%s: waiting up to %d s for the running job", d->current, grace_seconds);
        wait_idle(d, grace_seconds);
    }
    if (d->running) {
        d->cancel_reason = CANCEL_SHUTDOWN;
        d->cancel = 1; /* the engine stops at its next step; the job is released */
        if (d->o.cluster) {
            pthread_mutex_unlock(&d->mu);
            cluster_job_cancel(d->o.cluster);
            pthread_mutex_lock(&d->mu);
        }
        wait_idle(d, CANCEL_WAIT_S);
    }
    if (d->running) {
        /* a step longer than the wait: give the job back from here and leave the threads
         * to die with the process */
        char id[API_ID_SIZE];
        au_err err;
        memcpy(id, d->current, sizeof id);
        d->lost = 1;
        pthread_mutex_unlock(&d->mu);
        if (store_release(d->o.st, id, d->owner, &err) == 0)
            log_line("%s: the engine did not stop in time; job put back in the queue", id);
        else
            log_line("%s: the engine did not stop in time: %s", id, err.msg);
        return AU_EBUSY;
    }
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_join(d->keeper, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_cond_destroy(&d->keeper_wake);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return 0;
}
