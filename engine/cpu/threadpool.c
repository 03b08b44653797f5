/* threadpool.c - persistent worker threads for the CPU backend (see threadpool.h).
 *
 * A job is published under the mutex with a new generation number; workers
 * wake on `wake`, pull task indices from an atomic counter until it passes
 * n_tasks, and the last one to finish signals `done`. Between jobs workers
 * sleep on the condition variable, so an idle pool costs nothing.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct tp_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation;
    int stopping;
    int busy_workers; /* workers still inside the current job */
    tp_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_llong next_task;
};

typedef struct worker_arg {
    tp_pool *pool;
    int index;
} worker_arg;

static void run_tasks(tp_pool *p, tp_task_fn fn, void *ctx, int64_t n_tasks, int thread) {
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next_task, 1);
        if (t >= n_tasks)
            break;
        fn(ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    tp_pool *p = wa.pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stopping)
            break;
        seen = p->generation;
        tp_task_fn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n_tasks;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, fn, ctx, n, wa.index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy_workers == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

tp_pool *tp_create(int n_threads) {
    if (n_threads < 1)
        n_threads = 1;
    tp_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next_task, 0);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        tp_destroy(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->pool = p;
            wa->index = i;
        }
        if (!wa || pthread_create(&p->workers[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* only workers 1..i-1 exist */
            tp_destroy(p);
            return NULL;
        }
    }
    return p;
}

void tp_destroy(tp_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void tp_run(tp_pool *p, int64_t n_tasks, tp_task_fn fn, void *ctx) {
    if (n_tasks <= 0)
        return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    p->busy_workers = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, fn, ctx, n_tasks, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy_workers > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
