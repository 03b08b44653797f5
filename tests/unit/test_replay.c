// deps: au_core
/* test_replay.c - the record-then-replay logic of engine/replay.c over a stand-in backend whose
 * recording ops only count and can be told to fail: the first call of a key runs the function,
 * the second records it (the function runs inside the recording) and runs the graph, later calls
 * only run the graph; a new key starts over; a graph the backend refuses as stale (AU_ECONFLICT)
 * is dropped and recorded again on the next call; a failed recording leaves that key running
 * eagerly for good; errors of the function and of the graph reach the caller; more keys than
 * slots evict the least recently used one (its graph freed); a backend without recording always
 * runs the function; replay_clear frees every graph.
 */
#include "replay.h"

#include <stdlib.h>
#include <string.h>
#include "check.h"

struct au_graph {
    int id;
};

static int recording, fail_begin, fail_in_fn, stale, graph_error;
static int n_begin, n_end, n_runs, n_freed, live_graphs, fn_calls, fn_calls_recording;

static int fake_record_begin(au_backend *be, au_err *err) {
    (void)be;
    if (fail_begin)
        return au_errf(err, AU_EBACKEND, "record_begin refused");
    n_begin++;
    recording = 1;
    return 0;
}

static int fake_record_end(au_backend *be, au_graph **out, au_err *err) {
    (void)be;
    (void)err;
    n_end++;
    recording = 0;
    if (out) {
        *out = malloc(sizeof **out);
        live_graphs++;
    }
    return 0;
}

static int fake_graph_run(au_backend *be, au_graph *g, au_err *err) {
    (void)be;
    (void)g;
    if (stale)
        return au_errf(err, AU_ECONFLICT, "stale");
    if (graph_error)
        return au_errf(err, AU_EBACKEND, "graph launch failed");
    n_runs++;
    return 0;
}

static void fake_graph_free(au_backend *be, au_graph *g) {
    (void)be;
    free(g);
    live_graphs--;
    n_freed++;
}

static int fn(void *ctx, au_err *err) {
    (void)ctx;
    fn_calls++;
    fn_calls_recording += recording;
    if (fail_in_fn)
        return au_errf(err, AU_EINVAL, "bad op");
    return 0;
}

int main(void) {
    au_backend_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.name = "fake";
    au_backend eager_be = {&ops, AU_F32, AU_F32, NULL};
    au_err err = {0};
    au_replay r;

    /* no recording ops: always the function */
    replay_init(&r, &eager_be);
    for (int i = 0; i < 3; i++)
        CHECK(replay_run(&r, 7, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 3 && r.recorded == 0 && r.replayed == 0, "eager backend: %d calls", fn_calls);

    ops.record_begin = fake_record_begin;
    ops.record_end = fake_record_end;
    ops.graph_run = fake_graph_run;
    ops.graph_free = fake_graph_free;
    au_backend be = {&ops, AU_F32, AU_F32, NULL};
    replay_init(&r, &be);
    fn_calls = 0;

    /* first, second, third call of one key */
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 1 && fn_calls_recording == 0 && n_begin == 0, "first call: as it comes");
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 2 && fn_calls_recording == 1 && n_begin == 1 && n_end == 1 && n_runs == 1,
          "second call: recorded and run (%d calls, %d recording, %d runs)", fn_calls, fn_calls_recording, n_runs);
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 2 && n_runs == 2 && r.recorded == 1 && r.replayed == 2, "third call: replayed only");

    /* a second key beside it (CFG's other branch) */
    CHECK(replay_run(&r, 2, fn, NULL, &err) == 0 && replay_run(&r, 2, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 4 && r.recorded == 2 && live_graphs == 2, "two keys: %d calls, %d graphs", fn_calls, live_graphs);

    /* stale graph: dropped, the function runs, the next call records again */
    stale = 1;
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    stale = 0;
    CHECK(fn_calls == 5 && n_freed == 1 && live_graphs == 1, "stale: %d calls, %d freed", fn_calls, n_freed);
    CHECK(replay_run(&r, 1, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == 6 && r.recorded == 3 && live_graphs == 2, "stale: recorded again");

    /* a graph launch error reaches the caller */
    graph_error = 1;
    CHECK(replay_run(&r, 1, fn, NULL, &err) == AU_EBACKEND && strstr(err.msg, "graph launch"), "graph error: %s",
          err.msg);
    graph_error = 0;

    /* recording that fails: the function runs as it comes, now and later */
    fail_begin = 1;
    replay_run(&r, 3, fn, NULL, &err);
    const int before = fn_calls;
    CHECK(replay_run(&r, 3, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(fn_calls == before + 1, "record_begin refused: ran as it comes");
    fail_begin = 0;
    CHECK(replay_run(&r, 3, fn, NULL, &err) == 0 && fn_calls == before + 2, "eager-only key stays eager");

    /* an op failing inside the recording: dropped, then the error of the eager run */
    fail_in_fn = 1;
    replay_run(&r, 4, fn, NULL, &err);
    err.msg[0] = 0;
    CHECK(replay_run(&r, 4, fn, NULL, &err) == AU_EINVAL && strstr(err.msg, "bad op"), "fn error: %s", err.msg);
    fail_in_fn = 0;
    CHECK(!recording && n_begin == n_end, "every recording ended (%d begun, %d ended)", n_begin, n_end);

    /* more keys than slots: the least recently used (key 2) loses its graph */
    const int freed = n_freed;
    CHECK(replay_run(&r, 5, fn, NULL, &err) == 0, "%s", err.msg);
    CHECK(n_freed == freed + 1, "eviction freed %d graphs", n_freed - freed);

    replay_clear(&r);
    CHECK(live_graphs == 0, "replay_clear left %d graphs", live_graphs);

    /* keys differ with any pointer or integer */
    int a, b;
    uint64_t k1 = replay_key_ptr(REPLAY_KEY0, &a), k2 = replay_key_ptr(REPLAY_KEY0, &b);
    CHECK(k1 != k2 && replay_key_i64(k1, 1) != replay_key_i64(k1, 2), "keys");
    return check_exit_code();
}
