// deps: au_server
/* test_store.c - the job store's state machine on a real SQLite file: insert with the queue
 * bound, FIFO claims, progress/lease writes guarded by owner, completion, retryable and
 * permanent failures, the 3-attempt limit, lease expiry and start-up recovery, release on
 * shutdown, deletion under a running job, listing with pagination, expiry, ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/store.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)
#define CHECK_OK(call)                                                                                       \
    do {                                                                                                     \
        au_err e_;                                                                                           \
        au_err_clear(&e_);                                                                                   \
        int rc_ = (call);                                                                                    \
        if (rc_ < 0) {                                                                                       \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, au_status_name(rc_),         \
                    e_.msg);                                                                                 \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static void make_video(api_video *v, const char *prompt, int64_t created) {
    au_err err;
    memset(v, 0, sizeof *v);
    if (store_new_id(v->id, &err) != 0)
        abort();
    v->created_at = created;
    snprintf(v->model, sizeof v->model, "tiny");
    v->prompt = strdup(prompt);
    snprintf(v->seconds, sizeof v->seconds, "1");
    v->width = 64;
    v->height = 48;
    v->frames = 17;
    v->fps = 16;
    v->steps = 4;
    v->guidance_scale = 5.0;
    v->shift = 3.0;
    snprintf(v->sampler, sizeof v->sampler, "unipc");
    v->seed = 42;
}

static void test_ids(void) {
    char a[API_ID_SIZE], b[API_ID_SIZE];
    au_err err;
    CHECK(store_new_id(a, &err) == 0 && store_new_id(b, &err) == 0);
    CHECK(api_id_valid(a) && api_id_valid(b));
    CHECK(strcmp(a, b) != 0);
    CHECK(strlen(a) == strlen(API_ID_PREFIX) + API_ID_HEX);
}

static void test_lifecycle(store *s) {
    au_err err;
    api_video a, b, c, got;
    make_video(&a, "first", 100);
    make_video(&b, "second", 101);
    make_video(&c, "third", 102);
    b.negative_prompt = strdup("blurry");
    snprintf(b.remixed_from, sizeof b.remixed_from, "%s", a.id);
    b.seed = (int64_t)1 << 62; /* survives the int64 column */

    /* the bound counts unfinished jobs */
    CHECK_OK(store_insert(s, &a, 2, &e_));
    CHECK_OK(store_insert(s, &b, 2, &e_));
    CHECK(store_insert(s, &c, 2, &err) == AU_EBUSY);
    CHECK(strstr(err.msg, "queue is full") != NULL);
    CHECK(store_insert(s, &a, 0, &err) == AU_ECONFLICT);

    CHECK_OK(store_get(s, b.id, &got, &e_));
    CHECK(got.status == API_QUEUED && got.progress == 0 && got.attempts == 0);
    CHECK(strcmp(got.prompt, "second") == 0 && strcmp(got.negative_prompt, "blurry") == 0);
    CHECK(strcmp(got.remixed_from, a.id) == 0 && got.seed == ((int64_t)1 << 62));
    CHECK(got.width == 64 && got.height == 48 && got.frames == 17 && got.fps == 16 && got.steps == 4);
    CHECK(got.guidance_scale == 5.0 && got.shift == 3.0 && strcmp(got.sampler, "unipc") == 0);
    CHECK(got.completed_at == 0 && got.expires_at == 0 && got.error_code[0] == '\0');
    api_video_clear(&got);
    CHECK(store_get(s, "video_00000000000000000000000000000000", &got, &err) == AU_ENOTFOUND);

    /* FIFO claim under a lease */
    api_video job;
    CHECK(store_claim(s, "owner-1", 1000, 30, &job, &err) == 1);
    CHECK(strcmp(job.id, a.id) == 0 && job.status == API_IN_PROGRESS && job.attempts == 1);
    CHECK_OK(store_heartbeat(s, a.id, "owner-1", 40, 1050, &e_));
    CHECK(store_heartbeat(s, a.id, "owner-2", 50, 1050, &err) == AU_ENOTFOUND); /* not the owner */
    CHECK_OK(store_get(s, a.id, &got, &e_));
    CHECK(got.progress == 40 && got.status == API_IN_PROGRESS);
    api_video_clear(&got);

    /* a completed job frees a queue slot */
    CHECK_OK(store_complete(s, a.id, "owner-1", 1100, 0, &e_));
    CHECK(store_complete(s, a.id, "owner-1", 1100, 0, &err) == AU_ENOTFOUND); /* only forward */
    CHECK(store_heartbeat(s, a.id, "owner-1", 10, 1200, &err) == AU_ENOTFOUND);
    CHECK_OK(store_get(s, a.id, &got, &e_));
    CHECK(got.status == API_COMPLETED && got.progress == 100 && got.completed_at == 1100 &&
          got.expires_at == 0);
    api_video_clear(&got);
    CHECK_OK(store_insert(s, &c, 2, &e_));

    int counts[4];
    CHECK_OK(store_counts(s, counts, &e_));
    CHECK(counts[API_QUEUED] == 2 && counts[API_IN_PROGRESS] == 0 && counts[API_COMPLETED] == 1);

    /* a retryable error requeues until the third attempt, then fails with a reason */
    int requeued = -1;
    for (int attempt = 1; attempt <= STORE_MAX_ATTEMPTS; attempt++) {
        api_video_clear(&job);
        CHECK(store_claim(s, "owner-1", 2000, 30, &job, &err) == 1);
        CHECK(strcmp(job.id, b.id) == 0 && job.attempts == attempt);
        CHECK_OK(store_fail(s, b.id, "owner-1", 2001, "backend_error", "the GPU fell over", 1,
                            STORE_MAX_ATTEMPTS, &requeued, &e_));
        CHECK(requeued == (attempt < STORE_MAX_ATTEMPTS));
        CHECK_OK(store_get(s, b.id, &got, &e_));
        CHECK(got.status == (attempt < STORE_MAX_ATTEMPTS ? API_QUEUED : API_FAILED));
        api_video_clear(&got);
    }
    CHECK_OK(store_get(s, b.id, &got, &e_));
    CHECK(strcmp(got.error_code, "backend_error") == 0);
    CHECK(strstr(got.error_message, "the GPU fell over") &&
          strstr(got.error_message, "gave up after 3 attempts"));
    CHECK(got.completed_at == 2001);
    api_video_clear(&got);

    /* a permanent error fails at once */
    api_video_clear(&job);
    CHECK(store_claim(s, "owner-1", 3000, 30, &job, &err) == 1);
    CHECK(strcmp(job.id, c.id) == 0);
    CHECK_OK(store_fail(s, c.id, "owner-1", 3001, "invalid_argument", "frames: bad", 0, STORE_MAX_ATTEMPTS,
                        &requeued, &e_));
    CHECK(requeued == 0);
    CHECK_OK(store_get(s, c.id, &got, &e_));
    CHECK(got.status == API_FAILED && strcmp(got.error_message, "frames: bad") == 0);
    api_video_clear(&got);
    CHECK(store_claim(s, "owner-1", 3002, 30, &job, &err) == 0); /* queue empty */

    api_video_clear(&job);
    api_video_clear(&a);
    api_video_clear(&b);
    api_video_clear(&c);
}

static void test_leases(store *s) {
    au_err err;
    api_video v, job, got;
    make_video(&v, "lease", 5000);
    CHECK_OK(store_insert(s, &v, 0, &e_));
    int nr = -1, nf = -1;
    /* attempt 1: the worker dies; after the deadline the job goes back to the queue */
    CHECK(store_claim(s, "dead-1", 5000, 10, &job, &err) == 1);
    api_video_clear(&job);
    CHECK_OK(store_requeue_expired(s, 5005, STORE_MAX_ATTEMPTS, &nr, &nf, &e_));
    CHECK(nr == 0 && nf == 0); /* lease still valid */
    CHECK_OK(store_requeue_expired(s, 5011, STORE_MAX_ATTEMPTS, &nr, &nf, &e_));
    CHECK(nr == 1 && nf == 0);
    CHECK(store_heartbeat(s, v.id, "dead-1", 50, 6000, &err) == AU_ENOTFOUND); /* the old owner lost it */
    CHECK_OK(store_get(s, v.id, &got, &e_));
    CHECK(got.status == API_QUEUED && got.attempts == 1 && got.progress == 0);
    api_video_clear(&got);
    /* attempt 2: the process restarts; recovery requeues without waiting for the lease */
    CHECK(store_claim(s, "dead-2", 6000, 1000, &job, &err) == 1);
    CHECK(job.attempts == 2);
    api_video_clear(&job);
    CHECK_OK(store_recover(s, 6001, STORE_MAX_ATTEMPTS, &nr, &nf, &e_));
    CHECK(nr == 1 && nf == 0);
    /* a release on shutdown does not count as an attempt */
    CHECK(store_claim(s, "live", 6002, 1000, &job, &err) == 1);
    CHECK(job.attempts == 3);
    api_video_clear(&job);
    CHECK_OK(store_release(s, v.id, "live", &e_));
    CHECK(store_release(s, v.id, "live", &err) == AU_ENOTFOUND);
    CHECK_OK(store_get(s, v.id, &got, &e_));
    CHECK(got.status == API_QUEUED && got.attempts == 2);
    api_video_clear(&got);
    /* attempt 3 is lost too: failed, with the reason */
    CHECK(store_claim(s, "dead-3", 7000, 1000, &job, &err) == 1);
    CHECK(job.attempts == 3);
    api_video_clear(&job);
    CHECK_OK(store_recover(s, 7001, STORE_MAX_ATTEMPTS, &nr, &nf, &e_));
    CHECK(nr == 0 && nf == 1);
    CHECK_OK(store_get(s, v.id, &got, &e_));
    CHECK(got.status == API_FAILED && strcmp(got.error_code, "worker_lost") == 0);
    CHECK(strstr(got.error_message, "gave up after 3 attempts") != NULL && got.completed_at == 7001);
    api_video_clear(&got);
    api_video_clear(&v);
}

static void test_delete_running(store *s) {
    au_err err;
    api_video v, job, gone;
    make_video(&v, "doomed", 8000);
    CHECK_OK(store_insert(s, &v, 0, &e_));
    CHECK(store_claim(s, "w", 8000, 60, &job, &err) == 1);
    CHECK_OK(store_delete(s, v.id, &gone, &e_));
    CHECK(strcmp(gone.id, v.id) == 0 && gone.status == API_IN_PROGRESS && strcmp(gone.prompt, "doomed") == 0);
    /* the dispatcher finds out at its next write */
    CHECK(store_heartbeat(s, v.id, "w", 60, 8100, &err) == AU_ENOTFOUND);
    CHECK(store_complete(s, v.id, "w", 8100, 0, &err) == AU_ENOTFOUND);
    CHECK(store_delete(s, v.id, NULL, &err) == AU_ENOTFOUND);
    api_video_clear(&gone);
    api_video_clear(&job);
    api_video_clear(&v);
}

static void test_list_and_expiry(store *s) {
    au_err err;
    /* start from an empty table */
    api_video all[64];
    int n, more;
    CHECK_OK(store_list(s, NULL, 64, 0, all, &n, &more, &e_));
    for (int i = 0; i < n; i++) {
        CHECK_OK(store_delete(s, all[i].id, NULL, &e_));
        api_video_clear(&all[i]);
    }
    char ids[5][API_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        api_video v;
        char prompt[16];
        snprintf(prompt, sizeof prompt, "p%d", i);
        make_video(&v, prompt, 9000 + i);
        CHECK_OK(store_insert(s, &v, 0, &e_));
        memcpy(ids[i], v.id, API_ID_SIZE);
        api_video_clear(&v);
    }
    api_video page[2];
    CHECK_OK(store_list(s, NULL, 2, 0, page, &n, &more, &e_));
    CHECK(n == 2 && more == 1 && strcmp(page[0].id, ids[0]) == 0 && strcmp(page[1].id, ids[1]) == 0);
    char after[API_ID_SIZE];
    memcpy(after, page[1].id, API_ID_SIZE);
    api_video_clear(&page[0]);
    api_video_clear(&page[1]);
    CHECK_OK(store_list(s, after, 2, 0, page, &n, &more, &e_));
    CHECK(n == 2 && more == 1 && strcmp(page[0].id, ids[2]) == 0 && strcmp(page[1].id, ids[3]) == 0);
    memcpy(after, page[1].id, API_ID_SIZE);
    api_video_clear(&page[0]);
    api_video_clear(&page[1]);
    CHECK_OK(store_list(s, after, 2, 0, page, &n, &more, &e_));
    CHECK(n == 1 && more == 0 && strcmp(page[0].id, ids[4]) == 0);
    api_video_clear(&page[0]);
    /* newest first */
    CHECK_OK(store_list(s, NULL, 2, 1, page, &n, &more, &e_));
    CHECK(n == 2 && more == 1 && strcmp(page[0].id, ids[4]) == 0 && strcmp(page[1].id, ids[3]) == 0);
    api_video_clear(&page[0]);
    api_video_clear(&page[1]);
    CHECK_OK(store_list(s, ids[1], 2, 1, page, &n, &more, &e_));
    CHECK(n == 1 && more == 0 && strcmp(page[0].id, ids[0]) == 0);
    api_video_clear(&page[0]);
    CHECK(store_list(s, "video_ffffffffffffffffffffffffffffffff", 2, 0, page, &n, &more, &err) ==
          AU_ENOTFOUND);

    /* expiry: only finished videos whose time has come */
    api_video job;
    CHECK(store_claim(s, "w", 9100, 60, &job, &err) == 1);
    CHECK(strcmp(job.id, ids[0]) == 0);
    CHECK_OK(store_complete(s, ids[0], "w", 9101, 9200, &e_));
    api_video_clear(&job);
    char expired[4][API_ID_SIZE];
    CHECK_OK(store_expired(s, 9199, expired, 4, &n, &e_));
    CHECK(n == 0);
    CHECK_OK(store_expired(s, 9200, expired, 4, &n, &e_));
    CHECK(n == 1 && strcmp(expired[0], ids[0]) == 0);
    api_video got;
    CHECK_OK(store_get(s, ids[0], &got, &e_));
    CHECK(got.expires_at == 9200);
    api_video_clear(&got);
}

int main(void) {
    char dir[] = "/tmp/au_test_store_XXXXXX", path[256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/auteur.db", dir);
    store *s;
    au_err err;
    if (store_open(&s, path, &err) != 0) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return 1;
    }
    int before, after;
    store_schema_versions(s, &before, &after);
    CHECK(before == 0 && after >= 1);
    test_ids();
    test_lifecycle(s);
    test_leases(s);
    test_delete_running(s);
    test_list_and_expiry(s);
    store_close(s);
    /* reopening applies nothing and keeps the rows */
    if (store_open(&s, path, &err) != 0) {
        fprintf(stderr, "store_open again: %s\n", err.msg);
        return 1;
    }
    store_schema_versions(s, &before, &after);
    CHECK(before == after);
    int counts[4];
    CHECK_OK(store_counts(s, counts, &e_));
    CHECK(counts[API_COMPLETED] == 1 && counts[API_QUEUED] == 4);
    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "test_store: %d checks failed\n", failures);
        return 1;
    }
    printf("test_store: ok\n");
    return 0;
}
