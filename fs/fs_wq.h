/*
 * fs_wq.h - a fixed pool of worker threads serving a FIFO of jobs.
 *
 * The FUSE client hands work that may block or burn CPU off the FUSE and
 * network receive threads: encoding a stripe and sending its chunks,
 * retrying a chunk write, reporting to ckpt-meta, loading read-ahead
 * stripes.  A job is an intrusive struct embedded in the object it works on,
 * so queueing never allocates and cannot fail (a completion callback that
 * must queue follow-up work has no error path to take).
 *
 * Thread-safety: fs_wq_push() may be called from any thread, including from
 * a running job.  A job must not be pushed again before its fn has started.
 */
#ifndef FS_WQ_H
#define FS_WQ_H

#include <stdint.h>

struct fs_job;
typedef void (*fs_job_fn)(struct fs_job *job);

struct fs_job {
    fs_job_fn fn;         /* runs on a worker thread */
    struct fs_job *next;  /* private to fs_wq */
};

typedef struct fs_wq fs_wq;

/**
 * @brief Start nthreads workers.
 * @param[in] name      thread name prefix (at most 10 characters are used)
 * @param[in] nthreads  1..256
 * @param[in] nice      the workers' nice value (0: the caller's); a failure
 *                      to lower the priority is ignored
 * @param[out] out      destroyed with fs_wq_destroy()
 * @return 0, -EINVAL, -ENOMEM, or -errno of pthread_create (nothing left
 *         running).
 */
int fs_wq_create(const char *name, unsigned nthreads, int nice, fs_wq **out);

/**
 * @brief Run every job still queued (including those they push), then stop
 * and join the workers, and free.  NULL is a no-op.  Must not be called from
 * a job.
 */
void fs_wq_destroy(fs_wq *wq);

/** @brief Queue job (job->fn set by the caller).  Never fails. */
void fs_wq_push(fs_wq *wq, struct fs_job *job);

/** @return jobs queued and not yet started (a snapshot, for tests/stats). */
uint64_t fs_wq_queued(fs_wq *wq);

#endif
