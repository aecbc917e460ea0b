/*
 * check_fs_wq.c - unit tests for fs/fs_wq (worker threads over a FIFO of
 * intrusive jobs): every job runs exactly once, in order on one worker,
 * concurrently on several, and jobs pushed by running jobs still run when
 * the queue is being destroyed.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "alloc.h"
#include "fs_wq.h"

Suite *fs_wq_suite(void);

struct tjob {
    struct fs_job job;
    int id;
    int *order;
    atomic_int *pos;
    atomic_int *runs;
    fs_wq *wq;
    struct tjob *chain; /* pushed by this job when it runs */
};

static void tjob_run(struct fs_job *job)
{
    struct tjob *t = (struct tjob *)job; /* job is the first member */
    int p = atomic_fetch_add(t->pos, 1);
    if (t->order)
        t->order[p] = t->id;
    atomic_fetch_add(t->runs, 1);
    if (t->chain)
        fs_wq_push(t->wq, &t->chain->job);
}

START_TEST(test_fifo_one_worker)
{
    fs_wq *wq = NULL;
    struct tjob j[100];
    int order[100];
    atomic_int pos = 0, runs = 0;
    long live = ckpt_alloc_live();

    ck_assert_int_eq(fs_wq_create("t", 0, 0, &wq), -EINVAL);
    ck_assert_int_eq(fs_wq_create("t", 1, 0, &wq), 0);
    for (int i = 0; i < 100; i++) {
        j[i] = (struct tjob){.job.fn = tjob_run, .id = i, .order = order, .pos = &pos,
                             .runs = &runs, .wq = wq};
        fs_wq_push(wq, &j[i].job);
    }
    fs_wq_destroy(wq);
    ck_assert_int_eq(atomic_load(&runs), 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(order[i], i);
    fs_wq_destroy(NULL);
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

START_TEST(test_chain_during_destroy)
{
    fs_wq *wq = NULL;
    struct tjob j[50];
    atomic_int pos = 0, runs = 0;

    ck_assert_int_eq(fs_wq_create("t", 4, 5, &wq), 0);
    for (int i = 0; i < 50; i++)
        j[i] = (struct tjob){.job.fn = tjob_run, .id = i, .pos = &pos, .runs = &runs,
                             .wq = wq, .chain = i + 1 < 50 ? &j[i + 1] : NULL};
    fs_wq_push(wq, &j[0].job);
    fs_wq_destroy(wq); /* the whole chain must still run */
    ck_assert_int_eq(atomic_load(&runs), 50);
}
END_TEST

struct sjob {
    struct fs_job job;
    atomic_int *inside;
    atomic_int *maxin;
};

static void sjob_run(struct fs_job *job)
{
    struct sjob *s = (struct sjob *)job;
    int n = atomic_fetch_add(s->inside, 1) + 1;
    int m = atomic_load(s->maxin);
    while (n > m && !atomic_compare_exchange_weak(s->maxin, &m, n))
        ;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_sub(s->inside, 1);
}

START_TEST(test_parallel_workers)
{
    fs_wq *wq = NULL;
    struct sjob j[8];
    atomic_int inside = 0, maxin = 0;

    ck_assert_int_eq(fs_wq_create("t", 4, 5, &wq), 0);
    for (int i = 0; i < 8; i++) {
        j[i] = (struct sjob){.job.fn = sjob_run, .inside = &inside, .maxin = &maxin};
        fs_wq_push(wq, &j[i].job);
    }
    fs_wq_destroy(wq);
    ck_assert_int_ge(atomic_load(&maxin), 2);
    ck_assert_int_le(atomic_load(&maxin), 4);
}
END_TEST

Suite *fs_wq_suite(void)
{
    Suite *s = suite_create("fs_wq");
    TCase *tc = tcase_create("wq");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_fifo_one_worker);
    tcase_add_test(tc, test_chain_during_destroy);
    tcase_add_test(tc, test_parallel_workers);
    suite_add_tcase(s, tc);
    return s;
}
