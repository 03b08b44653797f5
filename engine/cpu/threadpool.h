/* threadpool.h - a small persistent pthread pool for the CPU backend.
 *
 * tp_run(pool, n_tasks, fn, ctx) calls fn(ctx, task, thread) for every task in
 * [0, n_tasks) and returns when all are done. Tasks are handed out one by one
 * from an atomic counter to the pool's workers and to the calling thread, which
 * takes part as thread 0; `thread` (0 .. n_threads-1) indexes per-thread scratch.
 * One tp_run at a time per pool (the backend is not re-entrant).
 */
#ifndef AU_CPU_THREADPOOL_H
#define AU_CPU_THREADPOOL_H

#include <stdint.h>

typedef struct tp_pool tp_pool;
typedef void (*tp_task_fn)(void *ctx, int64_t task, int thread);

/* n_threads counts the caller: n_threads - 1 workers are started. NULL on failure. */
tp_pool *tp_create(int n_threads);
void tp_destroy(tp_pool *pool);
void tp_run(tp_pool *pool, int64_t n_tasks, tp_task_fn fn, void *ctx);

#endif
