/*
 * cwl_pool.c - a small fixed pool of threads for the cloudwatch sink.
 *
 * host->aws_call blocks for a round trip, so one deliver() with records
 * for many streams sends to them in parallel: each stream's requests stay
 * in order on one thread, different streams run side by side. The
 * threads live as long as the sink instance; between batches they sleep
 * on a condition variable.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

struct cwl_pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a run started, or stop */
    pthread_cond_t done; /* a worker finished its part of a run */
    unsigned n_threads;
    pthread_t *threads;
    int stop;
    uint64_t run_id; /* bumped per run */
    void (*fn)(void *, size_t);
    void *arg;
    size_t count, next;
    unsigned active; /* threads inside the current run */
};

/* Take indexes until none is left. Called with the lock held; returns
 * with it held. */
static void run_items(cwl_pool *p)
{
    while (p->next < p->count) {
        size_t i = p->next++;
        void (*fn)(void *, size_t) = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->lock);
        fn(arg, i);
        pthread_mutex_lock(&p->lock);
    }
}

static void *worker(void *arg)
{
    cwl_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->run_id == seen)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        seen = p->run_id;
        p->active++;
        run_items(p);
        p->active--;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cwl_pool *cwl_pool_create(unsigned n, char *err, size_t errlen)
{
    cwl_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n > 1) {
        p->threads = calloc(n - 1, sizeof *p->threads);
        if (!p->threads) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (unsigned i = 0; i < n - 1; i++) {
            int e = pthread_create(&p->threads[i], NULL, worker, p);
            if (e) {
                snprintf(err, errlen, "cannot start a thread: %s", strerror(e));
                goto fail;
            }
            p->n_threads++;
        }
    }
    return p;

fail:
    cwl_pool_destroy(p);
    return NULL;
}

void cwl_pool_run(cwl_pool *p, void (*fn)(void *arg, size_t i), void *arg,
                  size_t count)
{
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->count = count;
    p->next = 0;
    p->run_id++;
    if (p->n_threads && count > 1)
        pthread_cond_broadcast(&p->work);
    run_items(p);
    /* Wait for the items other threads took. A thread that wakes up late
       finds nothing left and leaves at once. */
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->lock);
    p->fn = NULL;
    pthread_mutex_unlock(&p->lock);
}

void cwl_pool_destroy(cwl_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
