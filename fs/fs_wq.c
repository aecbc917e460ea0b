/*
 * fs_wq.c - worker threads serving a FIFO of intrusive jobs (fs_wq.h).
 *
 * DESIGN
 *
 *   Threads: nthreads workers (entry: wq_worker), each taking the oldest
 *   job from the queue and running it with no lock held.  The queue is a
 *   singly linked list with head and tail, protected by wq->lock; workers
 *   sleep on wq->cond while it is empty.
 *
 *   Shutdown: fs_wq_destroy() sets stopping; workers keep taking jobs until
 *   the queue is empty and only then exit, so a job that pushes a follow-up
 *   job (a retry, a completion report) still sees it run.
 */
#include "fs_wq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"

struct fs_wq {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* queue became non-empty, or stopping */
    struct fs_job *head, *tail; /* protected by lock */
    uint64_t queued;            /* protected by lock */
    bool stopping;              /* protected by lock */
    unsigned nthreads;
    pthread_t *threads;
    int nice;
    char name[16];
};

static void *wq_worker(void *arg)
{
    fs_wq *wq = arg;

    if (wq->nice)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), wq->nice);
    pthread_mutex_lock(&wq->lock);
    for (;;) {
        struct fs_job *job = wq->head;
        if (!job) {
            if (wq->stopping)
                break;
            pthread_cond_wait(&wq->cond, &wq->lock);
            continue;
        }
        wq->head = job->next;
        if (!wq->head)
            wq->tail = NULL;
        wq->queued--;
        pthread_mutex_unlock(&wq->lock);
        job->next = NULL;
        job->fn(job);
        pthread_mutex_lock(&wq->lock);
    }
    pthread_mutex_unlock(&wq->lock);
    return NULL;
}

int fs_wq_create(const char *name, unsigned nthreads, int nice, fs_wq **out)
{
    fs_wq *wq;
    unsigned started = 0;
    int rc = 0;

    if (!out || nthreads < 1 || nthreads > 256)
        return -EINVAL;
    wq = ckpt_calloc(1, sizeof(*wq));
    if (!wq)
        return -ENOMEM;
    wq->threads = ckpt_calloc(nthreads, sizeof(*wq->threads));
    if (!wq->threads) {
        ckpt_free(wq);
        return -ENOMEM;
    }
    snprintf(wq->name, sizeof(wq->name), "%.10s", name ? name : "fs-wq");
    wq->nice = nice;
    pthread_mutex_init(&wq->lock, NULL);
    pthread_cond_init(&wq->cond, NULL);
    for (; started < nthreads; started++) {
        rc = -pthread_create(&wq->threads[started], NULL, wq_worker, wq);
        if (rc < 0)
            break;
        char tname[16];
        snprintf(tname, sizeof(tname), "%.10s-%u", wq->name, started);
        (void)pthread_setname_np(wq->threads[started], tname);
    }
    wq->nthreads = started;
    if (rc < 0) {
        fs_wq_destroy(wq);
        return rc;
    }
    *out = wq;
    return 0;
}

void fs_wq_destroy(fs_wq *wq)
{
    if (!wq)
        return;
    pthread_mutex_lock(&wq->lock);
    wq->stopping = true;
    pthread_cond_broadcast(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
    for (unsigned i = 0; i < wq->nthreads; i++)
        pthread_join(wq->threads[i], NULL);
    pthread_cond_destroy(&wq->cond);
    pthread_mutex_destroy(&wq->lock);
    ckpt_free(wq->threads);
    ckpt_free(wq);
}

void fs_wq_push(fs_wq *wq, struct fs_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&wq->lock);
    if (wq->tail)
        wq->tail->next = job;
    else
        wq->head = job;
    wq->tail = job;
    wq->queued++;
    pthread_cond_signal(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
}

uint64_t fs_wq_queued(fs_wq *wq)
{
    pthread_mutex_lock(&wq->lock);
    uint64_t n = wq->queued;
    pthread_mutex_unlock(&wq->lock);
    return n;
}
