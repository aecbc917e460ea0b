/*
 * check_fs_pool.c - unit tests for fs/fs_pool (the dirty_limit budget) and
 * its backpressure: a reservation waits while the budget is used up and
 * proceeds as soon as enough is given back; one reservation larger than
 * the budget is granted alone; timeouts and counters.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fs_pool.h"
#include "net.h"

Suite *fs_pool_suite(void);

START_TEST(test_reserve_release)
{
    fs_pool *p = NULL;
    struct fs_pool_stats st;
    long live = ckpt_alloc_live();

    ck_assert_int_eq(fs_pool_create(0, &p), -EINVAL);
    ck_assert_int_eq(fs_pool_create(100, &p), 0);
    ck_assert_int_eq(fs_pool_reserve(p, 0, 0), -EINVAL);
    ck_assert_int_eq(fs_pool_reserve(p, 60, 0), 0);
    ck_assert_int_eq(fs_pool_reserve(p, 40, 0), 0);
    ck_assert_int_eq(fs_pool_reserve(p, 1, 0), -ETIMEDOUT);
    ck_assert_int_eq(fs_pool_reserve(p, 1, 30), -ETIMEDOUT);
    fs_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.in_use, 100);
    ck_assert_uint_eq(st.peak, 100);
    ck_assert_uint_eq(st.limit, 100);
    ck_assert_uint_eq(st.waits, 1);
    ck_assert_uint_ge(st.wait_ns, 25u * 1000 * 1000);
    fs_pool_release(p, 60);
    ck_assert_int_eq(fs_pool_reserve(p, 60, 0), 0);
    fs_pool_release(p, 60);
    fs_pool_release(p, 40);
    fs_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.in_use, 0);
    fs_pool_destroy(p);
    fs_pool_destroy(NULL);
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

START_TEST(test_oversize_alone)
{
    fs_pool *p = NULL;
    ck_assert_int_eq(fs_pool_create(100, &p), 0);
    /* Larger than the whole budget: granted when nothing else is held. */
    ck_assert_int_eq(fs_pool_reserve(p, 500, 0), 0);
    ck_assert_int_eq(fs_pool_reserve(p, 1, 0), -ETIMEDOUT);
    fs_pool_release(p, 500);
    ck_assert_int_eq(fs_pool_reserve(p, 1, 0), 0);
    ck_assert_int_eq(fs_pool_reserve(p, 500, 0), -ETIMEDOUT);
    fs_pool_release(p, 1);
    fs_pool_destroy(p);
}
END_TEST

struct waiter {
    fs_pool *p;
    atomic_int done;
    int rc;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    w->rc = fs_pool_reserve(w->p, 50, 10000);
    atomic_store(&w->done, 1);
    return NULL;
}

START_TEST(test_backpressure_wakes)
{
    struct waiter w = {0};
    pthread_t t;

    ck_assert_int_eq(fs_pool_create(100, &w.p), 0);
    ck_assert_int_eq(fs_pool_reserve(w.p, 80, 0), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
    /* The waiter must stay blocked while the budget is short... */
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(atomic_load(&w.done), 0);
    /* ...a release that is not enough keeps it blocked... */
    fs_pool_release(w.p, 20);
    nanosleep(&ts, NULL);
    ck_assert_int_eq(atomic_load(&w.done), 0);
    /* ...and one that is enough lets it through. */
    uint64_t t0 = ckpt_now_ns();
    fs_pool_release(w.p, 20);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_uint_lt(ckpt_now_ns() - t0, 2000ull * 1000 * 1000);
    struct fs_pool_stats st;
    fs_pool_get_stats(w.p, &st);
    ck_assert_uint_eq(st.in_use, 90);
    ck_assert_uint_le(st.peak, 100);
    fs_pool_release(w.p, 90);
    fs_pool_destroy(w.p);
}
END_TEST

/* Many threads cycling reservations never exceed the limit. */
struct cycler {
    fs_pool *p;
    int iters;
    int failures;
};

static void *cycle_thread(void *arg)
{
    struct cycler *c = arg;
    for (int i = 0; i < c->iters; i++) {
        if (fs_pool_reserve(c->p, 30, 10000) < 0) {
            c->failures++;
            continue;
        }
        struct fs_pool_stats st;
        fs_pool_get_stats(c->p, &st);
        if (st.in_use > 100)
            c->failures++;
        fs_pool_release(c->p, 30);
    }
    return NULL;
}

START_TEST(test_many_threads_bounded)
{
    fs_pool *p = NULL;
    pthread_t t[8];
    struct cycler c[8];

    ck_assert_int_eq(fs_pool_create(100, &p), 0);
    for (int i = 0; i < 8; i++) {
        c[i] = (struct cycler){p, 2000, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, cycle_thread, &c[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(c[i].failures, 0);
    }
    struct fs_pool_stats st;
    fs_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.in_use, 0);
    ck_assert_uint_le(st.peak, 90);
    fs_pool_destroy(p);
}
END_TEST

START_TEST(test_headroom)
{
    fs_pool *p = NULL;
    struct fs_pool_stats st;

    ck_assert_int_eq(fs_pool_create(100, &p), 0);
    fs_pool_set_headroom(p, 30);
    ck_assert_int_eq(fs_pool_reserve(p, 70, 0), 0);
    /* Buffered data may not use the headroom... */
    ck_assert_int_eq(fs_pool_reserve(p, 1, 0), -ETIMEDOUT);
    /* ...parity may. */
    ck_assert_int_eq(fs_pool_reserve_headroom(p, 30, 0), 0);
    ck_assert_int_eq(fs_pool_reserve_headroom(p, 1, 0), -ETIMEDOUT);
    fs_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.headroom, 30);
    ck_assert_uint_eq(st.in_use, 100);
    fs_pool_release(p, 100);
    /* The headroom is clamped to half the limit. */
    fs_pool_set_headroom(p, 1000);
    fs_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.headroom, 50);
    fs_pool_destroy(p);
}
END_TEST

Suite *fs_pool_suite(void)
{
    Suite *s = suite_create("fs_pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_reserve_release);
    tcase_add_test(tc, test_oversize_alone);
    tcase_add_test(tc, test_headroom);
    tcase_add_test(tc, test_backpressure_wakes);
    tcase_add_test(tc, test_many_threads_bounded);
    suite_add_tcase(s, tc);
    return s;
}
