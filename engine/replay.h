/* replay.h - run a fixed sequence of backend ops as a recorded graph after the first time.
 *
 * A computation that issues the same ops on the same memory every time (a DiT forward at one
 * shape, one denoising step after another) is wrapped in a function and run through
 * replay_run with a key that changes whenever the memory or shapes it touches change: the
 * first call with a key runs the ops as they come (sizing the backend's scratch), the second
 * records them (backend.h: record_begin) and runs the recording, later calls only run the
 * recording, which costs one launch instead of one per op. On a backend without recording,
 * or when recording fails (an op that cannot be recorded, scratch that had to grow), the ops
 * simply run as they come; a recording whose scratch moved is dropped and made again. The
 * function must not read the host values its ops produce, and anything it uploads from the
 * host must be uploaded before replay_run instead (a recording keeps the memory, not the
 * host values). The slots hold the most recent keys (CFG needs two: the conditional and the
 * unconditional forward).
 */
#ifndef AU_REPLAY_H
#define AU_REPLAY_H

#include "backend.h"

#define REPLAY_SLOTS 4

typedef int (*replay_fn)(void *ctx, au_err *err);

typedef struct replay_slot {
    uint64_t key;
    int runs;       /* calls seen with this key */
    int eager_only; /* recording failed for this key: never try again */
    au_graph *graph;
    uint64_t last_use;
} replay_slot;

typedef struct au_replay {
    au_backend *be;
    replay_slot slots[REPLAY_SLOTS];
    uint64_t clock;
    uint64_t recorded, replayed; /* graphs made, calls served by a graph */
} au_replay;

void replay_init(au_replay *r, au_backend *be);
/* Drop every recording (before the memory they use is freed). */
void replay_clear(au_replay *r);
int replay_run(au_replay *r, uint64_t key, replay_fn fn, void *ctx, au_err *err);

/* Key helpers: FNV-1a over the bytes of pointers and integers, starting from REPLAY_KEY0. */
#define REPLAY_KEY0 0xcbf29ce484222325ull
uint64_t replay_key_mix(uint64_t key, const void *bytes, size_t n);
static inline uint64_t replay_key_ptr(uint64_t key, const void *p) { return replay_key_mix(key, &p, sizeof p); }
static inline uint64_t replay_key_i64(uint64_t key, int64_t v) { return replay_key_mix(key, &v, sizeof v); }

#endif
