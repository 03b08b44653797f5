/* replay.c - recorded graphs of repeated op sequences, keyed (replay.h). */
#include "replay.h"

#include <string.h>

void replay_init(au_replay *r, au_backend *be) {
    memset(r, 0, sizeof *r);
    r->be = be;
}

static void slot_drop(au_replay *r, replay_slot *s) {
    if (s->graph)
        r->be->ops->graph_free(r->be, s->graph);
    memset(s, 0, sizeof *s);
}

void replay_clear(au_replay *r) {
    for (int i = 0; i < REPLAY_SLOTS; i++)
        slot_drop(r, &r->slots[i]);
}

uint64_t replay_key_mix(uint64_t key, const void *bytes, size_t n) {
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++) {
        key ^= b[i];
        key *= 0x100000001b3ull;
    }
    return key;
}

/* The slot of key, or the least recently used one, emptied for it. */
static replay_slot *slot_for(au_replay *r, uint64_t key) {
    replay_slot *lru = &r->slots[0];
    for (int i = 0; i < REPLAY_SLOTS; i++) {
        replay_slot *s = &r->slots[i];
        if (s->runs > 0 && s->key == key)
            return s;
        if (s->last_use < lru->last_use)
            lru = s;
    }
    slot_drop(r, lru);
    lru->key = key;
    return lru;
}

/* Record fn into s->graph. 0 when recorded; a failure leaves the slot eager-only (the ops
 * have not run: the caller runs them as they come). */
static int record(au_replay *r, replay_slot *s, replay_fn fn, void *ctx) {
    au_backend *be = r->be;
    au_err rec_err = {0};
    if (be->ops->record_begin(be, &rec_err) < 0) {
        s->eager_only = 1;
        return -1;
    }
    int rc = fn(ctx, &rec_err);
    au_graph *g = NULL;
    int rc_end = be->ops->record_end(be, rc < 0 ? NULL : &g, &rec_err);
    if (rc < 0 || rc_end < 0 || !g) {
        s->eager_only = 1;
        return -1;
    }
    s->graph = g;
    r->recorded++;
    return 0;
}

int replay_run(au_replay *r, uint64_t key, replay_fn fn, void *ctx, au_err *err) {
    au_backend *be = r->be;
    if (!be->ops->record_begin)
        return fn(ctx, err);
    replay_slot *s = slot_for(r, key);
    s->last_use = ++r->clock;
    s->runs++;
    if (s->graph) {
        int rc = be->ops->graph_run(be, s->graph, err);
        if (rc != AU_ECONFLICT) {
            r->replayed += rc == 0;
            return rc;
        }
        be->ops->graph_free(be, s->graph); /* the scratch moved: record again */
        s->graph = NULL;
        s->runs = 1;
    }
    if (s->runs >= 2 && !s->eager_only && record(r, s, fn, ctx) == 0) {
        int rc = be->ops->graph_run(be, s->graph, err);
        r->replayed += rc == 0;
        return rc;
    }
    return fn(ctx, err);
}
