/* store.c - the SQLite job store (store.h).
 *
 * Every statement is prepared once in store_open and reset after each use; one mutex
 * serialises the connection. Transitions are single UPDATE ... WHERE status = ... AND
 * lease_owner = ... statements (their own transaction in autocommit mode); claims and
 * requeues use RETURNING so the caller sees exactly the rows it changed.
 */
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "migrate.h"

#define VIDEO_COLS                                                                                           \
    "id, created_at, status, progress, model, prompt, negative_prompt, seconds, width, height, "             \
    "frames, fps, steps, guidance_scale, shift, sampler, seed, remixed_from, attempts, "                     \
    "completed_at, expires_at, error_code, error_message"

enum {
    ST_INSERT,
    ST_GET,
    ST_SEQ_OF,
    ST_LIST_ASC,
    ST_LIST_DESC,
    ST_DELETE,
    ST_CLAIM,
    ST_HEARTBEAT,
    ST_COMPLETE,
    ST_FAIL,
    ST_RELEASE,
    ST_REQUEUE,
    ST_COUNTS,
    ST_EXPIRED,
    ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
    [ST_INSERT] =
        "INSERT INTO videos (id, created_at, status, progress, model, prompt, negative_prompt, seconds, "
        "width, height, frames, fps, steps, guidance_scale, shift, sampler, seed, remixed_from) "
        "SELECT ?1, ?2, 'queued', 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16 "
        "WHERE ?17 <= 0 OR (SELECT count(*) FROM videos WHERE status IN ('queued', 'in_progress')) < ?17",
    [ST_GET] = "SELECT " VIDEO_COLS " FROM videos WHERE id = ?1",
    [ST_SEQ_OF] = "SELECT seq FROM videos WHERE id = ?1",
    [ST_LIST_ASC] = "SELECT " VIDEO_COLS " FROM videos WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2",
    [ST_LIST_DESC] = "SELECT " VIDEO_COLS " FROM videos WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
    [ST_DELETE] = "DELETE FROM videos WHERE id = ?1 RETURNING " VIDEO_COLS,
    [ST_CLAIM] = "UPDATE videos SET status = 'in_progress', progress = 0, attempts = attempts + 1, "
                 "lease_owner = ?1, lease_deadline = ?2, started_at = ?3 "
                 "WHERE seq = (SELECT seq FROM videos WHERE status = 'queued' ORDER BY seq LIMIT 1) "
                 "RETURNING " VIDEO_COLS,
    [ST_HEARTBEAT] = "UPDATE videos SET progress = ?3, lease_deadline = ?4 "
                     "WHERE id = ?1 AND status = 'in_progress' AND lease_owner = ?2",
    [ST_COMPLETE] =
        "UPDATE videos SET status = 'completed', progress = 100, completed_at = ?3, expires_at = ?4, "
        "lease_owner = NULL, lease_deadline = NULL, error_code = NULL, error_message = NULL "
        "WHERE id = ?1 AND status = 'in_progress' AND lease_owner = ?2",
    /* ?5 retryable, ?6 max attempts: requeue while attempts remain, else fail for good. */
    [ST_FAIL] = "UPDATE videos SET "
                "status = CASE WHEN ?5 AND attempts < ?6 THEN 'queued' ELSE 'failed' END, "
                "progress = 0, lease_owner = NULL, lease_deadline = NULL, error_code = ?4, "
                "error_message = CASE WHEN ?5 AND attempts >= ?6 "
                "  THEN printf('%s (gave up after %d attempts)', ?7, attempts) ELSE ?7 END, "
                "completed_at = CASE WHEN ?5 AND attempts < ?6 THEN NULL ELSE ?3 END "
                "WHERE id = ?1 AND status = 'in_progress' AND lease_owner = ?2 RETURNING status",
    [ST_RELEASE] = "UPDATE videos SET status = 'queued', progress = 0, attempts = max(attempts - 1, 0), "
                   "lease_owner = NULL, lease_deadline = NULL "
                   "WHERE id = ?1 AND status = 'in_progress' AND lease_owner = ?2",
    /* ?1 leases ending before this are lost, ?2 max attempts, ?3 the time of the change. */
    [ST_REQUEUE] =
        "UPDATE videos SET "
        "status = CASE WHEN attempts < ?2 THEN 'queued' ELSE 'failed' END, "
        "progress = 0, lease_owner = NULL, lease_deadline = NULL, error_code = 'worker_lost', "
        "error_message = CASE WHEN attempts < ?2 "
        "  THEN printf('the worker stopped during attempt %d', attempts) "
        "  ELSE printf('the worker stopped during generation (gave up after %d attempts)', attempts) END, "
        "completed_at = CASE WHEN attempts < ?2 THEN NULL ELSE ?3 END "
        "WHERE status = 'in_progress' AND lease_deadline < ?1 RETURNING id, status",
    [ST_COUNTS] = "SELECT status, count(*) FROM videos GROUP BY status",
    [ST_EXPIRED] = "SELECT id FROM videos WHERE expires_at IS NOT NULL AND expires_at <= ?1 "
                   "AND status IN ('completed', 'failed') ORDER BY seq LIMIT ?2",
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    pthread_mutex_t mu;
    int version_before, version_after;
};

/* The SQLite check: names what failed and carries SQLite's own message. */
static int sql_fail(store *s, au_err *err, const char *what) {
    return au_errf(err, AU_EIO, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec_pragma(sqlite3 *db, const char *sql, const char *expect, au_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return au_errf(err, AU_EIO, "sqlite %s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (ok && expect && rc == SQLITE_ROW) {
        const char *got = (const char *)sqlite3_column_text(st, 0);
        ok = got && strcmp(got, expect) == 0;
        if (!ok)
            au_errf(err, AU_EIO, "sqlite %s: got \"%s\", expected \"%s\"", sql, got ? got : "", expect);
    } else if (!ok) {
        au_errf(err, AU_EIO, "sqlite %s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return ok ? 0 : AU_EIO;
}

int store_open(store **out, const char *path, au_err *err) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return au_errf(err, AU_ENOMEM, "store: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    int rc;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = au_errf(err, AU_EIO, "database %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if ((rc = exec_pragma(s->db, "PRAGMA journal_mode = WAL", "wal", err)) ||
        (rc = exec_pragma(s->db, "PRAGMA synchronous = NORMAL", NULL, err)) ||
        (rc = migrate_apply(s->db, &s->version_before, &s->version_after, err))) {
        au_err_prefix(err, "database %s", path);
        goto fail;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            rc = au_errf(err, AU_EIO, "database %s: preparing statement %d: %s", path, i,
                         sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    store_close(s);
    return rc;
}

void store_close(store *s) {
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void store_schema_versions(const store *s, int *before, int *after) {
    *before = s->version_before;
    *after = s->version_after;
}

int store_new_id(char out[API_ID_SIZE], au_err *err) {
    unsigned char raw[API_ID_HEX / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0)
            return au_errf(err, AU_EIO, "getrandom for a video id failed");
        got += (size_t)n;
    }
    int o = snprintf(out, API_ID_SIZE, "%s", API_ID_PREFIX);
    for (size_t i = 0; i < sizeof raw; i++)
        o += snprintf(out + o, API_ID_SIZE - o, "%02x", raw[i]);
    return 0;
}

static char *col_strdup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* Fill v from a row of VIDEO_COLS. */
static int read_video(sqlite3_stmt *st, api_video *v, au_err *err) {
    char status[16];
    memset(v, 0, sizeof *v);
    col_copy(st, 0, v->id, sizeof v->id);
    v->created_at = sqlite3_column_int64(st, 1);
    col_copy(st, 2, status, sizeof status);
    if (api_status_parse(status, &v->status) != 0)
        return au_errf(err, AU_EINTERNAL, "video %s: unknown status \"%s\" in the database", v->id, status);
    v->progress = sqlite3_column_int(st, 3);
    col_copy(st, 4, v->model, sizeof v->model);
    v->prompt = col_strdup(st, 5);
    v->negative_prompt = col_strdup(st, 6);
    if (!v->prompt || (sqlite3_column_type(st, 6) != SQLITE_NULL && !v->negative_prompt)) {
        api_video_clear(v);
        return au_errf(err, AU_ENOMEM, "reading a video row: out of memory");
    }
    col_copy(st, 7, v->seconds, sizeof v->seconds);
    v->width = sqlite3_column_int(st, 8);
    v->height = sqlite3_column_int(st, 9);
    v->frames = sqlite3_column_int(st, 10);
    v->fps = sqlite3_column_int(st, 11);
    v->steps = sqlite3_column_int(st, 12);
    v->guidance_scale = sqlite3_column_double(st, 13);
    v->shift = sqlite3_column_double(st, 14);
    col_copy(st, 15, v->sampler, sizeof v->sampler);
    v->seed = sqlite3_column_int64(st, 16);
    col_copy(st, 17, v->remixed_from, sizeof v->remixed_from);
    v->attempts = sqlite3_column_int(st, 18);
    v->completed_at = sqlite3_column_int64(st, 19);
    v->expires_at = sqlite3_column_int64(st, 20);
    col_copy(st, 21, v->error_code, sizeof v->error_code);
    col_copy(st, 22, v->error_message, sizeof v->error_message);
    return 0;
}

static sqlite3_stmt *begin(store *s, int which) {
    pthread_mutex_lock(&s->mu);
    return s->st[which];
}

static void end(store *s, sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
}

int store_insert(store *s, const api_video *v, int max_queue, au_err *err) {
    sqlite3_stmt *st = begin(s, ST_INSERT);
    int rc = 0;
    sqlite3_bind_text(st, 1, v->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v->created_at);
    sqlite3_bind_text(st, 3, v->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, v->prompt, -1, SQLITE_STATIC);
    if (v->negative_prompt)
        sqlite3_bind_text(st, 5, v->negative_prompt, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, v->seconds, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, v->width);
    sqlite3_bind_int(st, 8, v->height);
    sqlite3_bind_int(st, 9, v->frames);
    sqlite3_bind_int(st, 10, v->fps);
    sqlite3_bind_int(st, 11, v->steps);
    sqlite3_bind_double(st, 12, v->guidance_scale);
    sqlite3_bind_double(st, 13, v->shift);
    sqlite3_bind_text(st, 14, v->sampler, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, v->seed);
    if (v->remixed_from[0])
        sqlite3_bind_text(st, 16, v->remixed_from, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 17, max_queue);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT)
        rc = au_errf(err, AU_ECONFLICT, "video %s already exists", v->id);
    else if (step != SQLITE_DONE)
        rc = sql_fail(s, err, "insert video");
    else if (sqlite3_changes(s->db) == 0)
        rc = au_errf(err, AU_EBUSY, "the queue is full (%d unfinished jobs); retry later", max_queue);
    end(s, st);
    return rc;
}

/* Step a statement that returns at most one video row. 1 = row read, 0 = none. */
static int step_one_video(store *s, sqlite3_stmt *st, api_video *out, const char *what, au_err *err) {
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        int rc = read_video(st, out, err);
        /* finish the statement so an UPDATE/DELETE ... RETURNING commits */
        while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        }
        if (rc == 0 && step != SQLITE_DONE) {
            api_video_clear(out);
            return sql_fail(s, err, what);
        }
        return rc ? rc : 1;
    }
    return step == SQLITE_DONE ? 0 : sql_fail(s, err, what);
}

int store_get(store *s, const char *id, api_video *out, au_err *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = begin(s, ST_GET);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = step_one_video(s, st, out, "get video", err);
    end(s, st);
    if (rc == 0)
        return au_errf(err, AU_ENOTFOUND, "no video with id %s", id);
    return rc < 0 ? rc : 0;
}

int store_list(store *s, const char *after, int limit, int descending, api_video *out, int *n, int *has_more,
               au_err *err) {
    int64_t bound = descending ? INT64_MAX : 0;
    int rc = 0;
    *n = 0;
    *has_more = 0;
    if (after) {
        sqlite3_stmt *st = begin(s, ST_SEQ_OF);
        sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            bound = sqlite3_column_int64(st, 0);
        else
            rc = step == SQLITE_DONE ? au_errf(err, AU_ENOTFOUND, "after: no video with id %s", after)
                                     : sql_fail(s, err, "list videos");
        end(s, st);
        if (rc)
            return rc;
    }
    sqlite3_stmt *st = begin(s, descending ? ST_LIST_DESC : ST_LIST_ASC);
    sqlite3_bind_int64(st, 1, bound);
    sqlite3_bind_int(st, 2, limit + 1); /* one more than asked says whether there are more */
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *has_more = 1;
            break;
        }
        if ((rc = read_video(st, &out[*n], err)))
            break;
        (*n)++;
    }
    if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sql_fail(s, err, "list videos");
    end(s, st);
    if (rc) {
        for (int i = 0; i < *n; i++)
            api_video_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int store_delete(store *s, const char *id, api_video *deleted, au_err *err) {
    api_video tmp;
    sqlite3_stmt *st = begin(s, ST_DELETE);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = step_one_video(s, st, &tmp, "delete video", err);
    end(s, st);
    if (rc == 0)
        return au_errf(err, AU_ENOTFOUND, "no video with id %s", id);
    if (rc < 0)
        return rc;
    if (deleted)
        *deleted = tmp;
    else
        api_video_clear(&tmp);
    return 0;
}

int store_claim(store *s, const char *owner, int64_t now, int lease_seconds, api_video *out, au_err *err) {
    sqlite3_stmt *st = begin(s, ST_CLAIM);
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now + lease_seconds);
    sqlite3_bind_int64(st, 3, now);
    int rc = step_one_video(s, st, out, "claim job", err);
    end(s, st);
    return rc;
}

/* Run an owner-guarded transition; AU_ENOTFOUND when it changed no row. */
static int run_transition(store *s, sqlite3_stmt *st, const char *id, const char *what, au_err *err) {
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sql_fail(s, err, what);
    else if (sqlite3_changes(s->db) == 0)
        rc = au_errf(err, AU_ENOTFOUND, "%s %s: the job is no longer in progress under this owner", what, id);
    end(s, st);
    return rc;
}

int store_heartbeat(store *s, const char *id, const char *owner, int progress, int64_t lease_deadline,
                    au_err *err) {
    sqlite3_stmt *st = begin(s, ST_HEARTBEAT);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, progress < 0 ? 0 : progress > 100 ? 100 : progress);
    sqlite3_bind_int64(st, 4, lease_deadline);
    return run_transition(s, st, id, "progress of", err);
}

int store_complete(store *s, const char *id, const char *owner, int64_t now, int64_t expires_at,
                   au_err *err) {
    sqlite3_stmt *st = begin(s, ST_COMPLETE);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (expires_at > 0)
        sqlite3_bind_int64(st, 4, expires_at);
    return run_transition(s, st, id, "complete", err);
}

int store_fail(store *s, const char *id, const char *owner, int64_t now, const char *code,
               const char *message, int retryable, int max_attempts, int *requeued, au_err *err) {
    sqlite3_stmt *st = begin(s, ST_FAIL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_text(st, 4, code, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, retryable ? 1 : 0);
    sqlite3_bind_int(st, 6, max_attempts);
    sqlite3_bind_text(st, 7, message, -1, SQLITE_STATIC);
    int rc = 0, step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (requeued)
            *requeued = strcmp((const char *)sqlite3_column_text(st, 0), "queued") == 0;
        step = sqlite3_step(st);
        if (step != SQLITE_DONE)
            rc = sql_fail(s, err, "fail job");
    } else if (step == SQLITE_DONE) {
        rc = au_errf(err, AU_ENOTFOUND, "fail %s: the job is no longer in progress under this owner", id);
    } else {
        rc = sql_fail(s, err, "fail job");
    }
    end(s, st);
    return rc;
}

int store_release(store *s, const char *id, const char *owner, au_err *err) {
    sqlite3_stmt *st = begin(s, ST_RELEASE);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    return run_transition(s, st, id, "release", err);
}

static int requeue(store *s, int64_t deadline_before, int64_t now, int max_attempts, int *n_requeued,
                   int *n_failed, au_err *err) {
    int requeued = 0, failed = 0, step, rc = 0;
    sqlite3_stmt *st = begin(s, ST_REQUEUE);
    sqlite3_bind_int64(st, 1, deadline_before);
    sqlite3_bind_int(st, 2, max_attempts);
    sqlite3_bind_int64(st, 3, now);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (strcmp((const char *)sqlite3_column_text(st, 1), "queued") == 0)
            requeued++;
        else
            failed++;
    }
    if (step != SQLITE_DONE)
        rc = sql_fail(s, err, "requeue expired jobs");
    end(s, st);
    if (n_requeued)
        *n_requeued = requeued;
    if (n_failed)
        *n_failed = failed;
    return rc;
}

int store_requeue_expired(store *s, int64_t now, int max_attempts, int *n_requeued, int *n_failed,
                          au_err *err) {
    return requeue(s, now, now, max_attempts, n_requeued, n_failed, err);
}

int store_recover(store *s, int64_t now, int max_attempts, int *n_requeued, int *n_failed, au_err *err) {
    return requeue(s, INT64_MAX, now, max_attempts, n_requeued, n_failed, err);
}

int store_counts(store *s, int counts[4], au_err *err) {
    int step, rc = 0;
    memset(counts, 0, 4 * sizeof counts[0]);
    sqlite3_stmt *st = begin(s, ST_COUNTS);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        api_status status;
        if (api_status_parse((const char *)sqlite3_column_text(st, 0), &status) == 0)
            counts[status] = sqlite3_column_int(st, 1);
    }
    if (step != SQLITE_DONE)
        rc = sql_fail(s, err, "count jobs");
    end(s, st);
    return rc;
}

int store_expired(store *s, int64_t now, char (*ids)[API_ID_SIZE], int cap, int *n, au_err *err) {
    int step, rc = 0;
    *n = 0;
    sqlite3_stmt *st = begin(s, ST_EXPIRED);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, cap);
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < cap)
        col_copy(st, 0, ids[(*n)++], API_ID_SIZE);
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = sql_fail(s, err, "list expired videos");
    end(s, st);
    return rc;
}
