/*
 * check_metrics.c - the Prometheus registry and its HTTP endpoint, over a
 * real loopback socket.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "metrics.h"

static double forty_two(void *ctx)
{
    (void)ctx;
    return 42.5;
}

START_TEST(render_groups_series_by_name)
{
    ckpt_metrics *m;
    ckpt_metric *w1, *w2, *g;
    ck_assert_int_eq(ckpt_metrics_create(&m), 0);
    ck_assert_int_eq(ckpt_metrics_add(m, "ckptfs_writes_total", "Chunk writes.",
                                      CKPT_METRIC_COUNTER, "target=\"1\"", &w1), 0);
    ck_assert_int_eq(ckpt_metrics_add(m, "ckptfs_free_bytes", "Free.", CKPT_METRIC_GAUGE, NULL,
                                      &g), 0);
    ck_assert_int_eq(ckpt_metrics_add(m, "ckptfs_writes_total", "Chunk writes.",
                                      CKPT_METRIC_COUNTER, "target=\"2\"", &w2), 0);
    ck_assert_int_eq(ckpt_metrics_add_fn(m, "ckptfs_ratio", "Computed.", CKPT_METRIC_GAUGE, NULL,
                                         forty_two, NULL), 0);
    ckpt_metric_add(w1, 3);
    ckpt_metric_add(w2, 5);
    ckpt_metric_set(g, 1ull << 40);
    char *text;
    long n = ckpt_metrics_render(m, &text);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(text,
                     "# HELP ckptfs_writes_total Chunk writes.\n"
                     "# TYPE ckptfs_writes_total counter\n"
                     "ckptfs_writes_total{target=\"1\"} 3\n"
                     "ckptfs_writes_total{target=\"2\"} 5\n"
                     "# HELP ckptfs_free_bytes Free.\n"
                     "# TYPE ckptfs_free_bytes gauge\n"
                     "ckptfs_free_bytes 1099511627776\n"
                     "# HELP ckptfs_ratio Computed.\n"
                     "# TYPE ckptfs_ratio gauge\n"
                     "ckptfs_ratio 42.5\n");
    ckpt_free(text);
    ckpt_metric *bad;
    ck_assert_int_eq(ckpt_metrics_add(m, "9starts_with_digit", "", CKPT_METRIC_GAUGE, NULL, &bad),
                     -EINVAL);
    ck_assert_int_eq(ckpt_metrics_add(m, "has space", "", CKPT_METRIC_GAUGE, NULL, &bad), -EINVAL);
    ck_assert_int_eq(ckpt_metrics_add(m, "ok", "", CKPT_METRIC_GAUGE, "a=\"}\"", &bad), -EINVAL);
    ckpt_metrics_destroy(m);
}
END_TEST

static char *http_get(uint16_t port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
    static char buf[65536];
    size_t got = 0;
    ssize_t r;
    while ((r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    return buf;
}

START_TEST(http_endpoint)
{
    ckpt_metrics *m;
    ckpt_metric *c;
    ck_assert_int_eq(ckpt_metrics_create(&m), 0);
    ck_assert_int_eq(ckpt_metrics_add(m, "ckptfs_up", "Up.", CKPT_METRIC_GAUGE, NULL, &c), 0);
    ckpt_metric_set(c, 1);
    ck_assert_int_eq(ckpt_metrics_serve(m, "127.0.0.1", 0), 0);
    ck_assert_int_eq(ckpt_metrics_serve(m, "127.0.0.1", 0), -EALREADY);
    uint16_t port = ckpt_metrics_port(m);
    ck_assert_uint_ne(port, 0);
    char *r = http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_ptr_nonnull(strstr(r, "HTTP/1.0 200 OK"));
    ck_assert_ptr_nonnull(strstr(r, "text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\n# HELP ckptfs_up Up.\n"));
    ck_assert_ptr_nonnull(strstr(r, "ckptfs_up 1\n"));
    r = http_get(port, "GET /other HTTP/1.1\r\n\r\n");
    ck_assert_ptr_nonnull(strstr(r, "404"));
    r = http_get(port, "\x01\x02garbage\r\n\r\n");
    ck_assert_ptr_nonnull(strstr(r, "400"));
    /* Still serving after bad requests. */
    r = http_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_ptr_nonnull(strstr(r, "ckptfs_up 1\n"));
    ckpt_metrics_destroy(m);
}
END_TEST

START_TEST(out_of_memory_paths)
{
    long live = ckpt_alloc_live();
    for (long n = 1; n < 50; n++) {
        ckpt_metrics *m = NULL;
        ckpt_metric *c;
        char *text = NULL;
        ckpt_fault_arm(CKPT_FAULT_ALLOC, n);
        int rc = ckpt_metrics_create(&m);
        if (rc == 0)
            rc = ckpt_metrics_add(m, "a_total", "A.", CKPT_METRIC_COUNTER, "x=\"1\"", &c);
        if (rc == 0 && ckpt_metrics_render(m, &text) >= 0)
            ckpt_free(text);
        bool fired = ckpt_fault_fired(CKPT_FAULT_ALLOC);
        ckpt_fault_disarm_all();
        ckpt_metrics_destroy(m);
        ck_assert_int_eq(ckpt_alloc_live(), live);
        if (!fired)
            break;
    }
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, render_groups_series_by_name);
    tcase_add_test(tc, http_endpoint);
    tcase_add_test(tc, out_of_memory_paths);
    suite_add_tcase(s, tc);
    return s;
}
