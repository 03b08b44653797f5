/* store.h - the SQLite job store: one row per video, its parameters and its lifecycle.
 *
 * States move forward only: queued -> in_progress -> completed | failed. The one way back
 * is a lost or failed attempt returning the job to queued, which happens at most
 * max_attempts - 1 times; the next loss fails it with a reason. A job is claimed atomically
 * (one UPDATE ... RETURNING) under a lease: an owner string and a deadline that every
 * progress write extends. Each transition is one statement, so one transaction, and is
 * guarded by the expected state and owner: a dispatcher whose job was deleted or whose
 * lease was taken away learns it (AU_ENOTFOUND) at its next write.
 *
 * The database runs in WAL mode with a busy timeout; statements are prepared once at open;
 * one connection is shared by all threads behind a mutex (every call is short).
 * Times are Unix seconds given by the caller, so tests can move the clock.
 */
#ifndef AU_STORE_H
#define AU_STORE_H

#include <stdint.h>

#include "api/video.h"
#include "status.h"

#define STORE_MAX_ATTEMPTS 3
#define STORE_BUSY_TIMEOUT_MS 5000

typedef struct store store;

/* Open (creating) the database at path, set WAL and the busy timeout, apply the embedded
 * migrations and prepare the statements. */
int store_open(store **out, const char *path, au_err *err);
void store_close(store *s);
/* Schema versions before and after the migrations store_open applied. */
void store_schema_versions(const store *s, int *before, int *after);

/* A fresh video id: "video_" + 32 hex digits from getrandom(). */
int store_new_id(char out[API_ID_SIZE], au_err *err);

/* Insert v as queued, unless max_queue > 0 and that many jobs are already unfinished
 * (queued or in progress): AU_EBUSY. AU_ECONFLICT when the id exists. */
int store_insert(store *s, const api_video *v, int max_queue, au_err *err);
/* AU_ENOTFOUND when there is no such video. out is cleared first; free with api_video_clear. */
int store_get(store *s, const char *id, api_video *out, au_err *err);
/* Up to `limit` videos in creation order (newest first when descending), after the video
 * `after` (NULL = from the start); out has room for limit items, each freed by the caller.
 * AU_ENOTFOUND when `after` is not a stored id. */
int store_list(store *s, const char *after, int limit, int descending, api_video *out, int *n, int *has_more,
               au_err *err);
/* Remove a video's row; *deleted (may be NULL) receives it. AU_ENOTFOUND when absent. */
int store_delete(store *s, const char *id, api_video *deleted, au_err *err);

/* Claim the oldest queued job for owner until now + lease_seconds, counting an attempt.
 * Returns 1 with *out filled, 0 when the queue is empty, or a negative status. */
int store_claim(store *s, const char *owner, int64_t now, int lease_seconds, api_video *out, au_err *err);
/* Record progress (0..100) and extend the lease. AU_ENOTFOUND when the job is no longer
 * this owner's in-progress job (deleted, or its lease expired and it was taken back). */
int store_heartbeat(store *s, const char *id, const char *owner, int progress, int64_t lease_deadline,
                    au_err *err);
/* in_progress -> completed (progress 100). expires_at 0 = never. AU_ENOTFOUND as above. */
int store_complete(store *s, const char *id, const char *owner, int64_t now, int64_t expires_at, au_err *err);
/* End an attempt with an error. A retryable error with attempts left requeues the job
 * (*requeued = 1); otherwise it becomes failed with code and message (the message notes the
 * attempts when they ran out). AU_ENOTFOUND as above. */
int store_fail(store *s, const char *id, const char *owner, int64_t now, const char *code,
               const char *message, int retryable, int max_attempts, int *requeued, au_err *err);
/* Give a claimed job back to the queue without counting the attempt (shutdown). */
int store_release(store *s, const char *id, const char *owner, au_err *err);
/* Jobs in progress whose lease ended before `now`: back to queued, or failed when they
 * have used max_attempts. Counts may be NULL. */
int store_requeue_expired(store *s, int64_t now, int max_attempts, int *n_requeued, int *n_failed,
                          au_err *err);
/* At start-up, with the data directory locked to this process: every in-progress job
 * belongs to a process that is gone, so all of them are treated as expired. */
int store_recover(store *s, int64_t now, int max_attempts, int *n_requeued, int *n_failed, au_err *err);

/* Jobs by state, indexed by api_status. */
int store_counts(store *s, int counts[4], au_err *err);
/* Ids of finished videos whose expires_at is at or before now (at most cap). */
int store_expired(store *s, int64_t now, char (*ids)[API_ID_SIZE], int cap, int *n, au_err *err);

#endif
