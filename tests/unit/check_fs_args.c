/*
 * check_fs_args.c - unit tests for fs/fs_args (the ckptfs / mount.ckptfs
 * command line): positional SOURCE/MOUNTPOINT forms, ckptfs -o options
 * validated like the config file, FUSE options passed through, config file
 * and --set precedence, and the usage (2) versus error (1) results.
 */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "fs_args.h"

Suite *fs_args_suite(void);

static char dir[256], keyf[300], conf[300], mnt[300], notdir[300];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_fs_args.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(keyf, sizeof(keyf), "%s/cluster.key", dir);
    snprintf(conf, sizeof(conf), "%s/ckptfs.conf", dir);
    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    snprintf(notdir, sizeof(notdir), "%s/file", dir);
    ck_assert_int_eq(ckpt_auth_key_generate(keyf), 0);
    ck_assert_int_eq(mkdir(mnt, 0755), 0);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[cluster]\nkey_file = %s\nmeta = 10.1.2.3:7555\n[client]\nthreads = 5\n"
               "readahead = 16M\n", keyf);
    fclose(f);
    f = fopen(notdir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    unsetenv("CKPTFS_CONF");
}

static void teardown(void)
{
    unlink(keyf);
    unlink(conf);
    unlink(notdir);
    rmdir(mnt);
    rmdir(dir);
}

static int parse(struct fs_args *a, char *err, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    return fs_args_parse(argc, argv, a, err, 512);
}

static bool fuse_has(const struct fs_args *a, const char *needle)
{
    for (int i = 0; i < a->fuse_argc; i++)
        if (strstr(a->fuse_argv[i], needle))
            return true;
    return false;
}

START_TEST(test_basic_conf)
{
    struct fs_args a;
    char err[512];
    long live = ckpt_alloc_live();

    ck_assert_int_eq(parse(&a, err, 4, "ckptfs", "-c", conf, mnt), 0);
    ck_assert_str_eq(a.mountpoint, mnt);
    ck_assert_str_eq(a.opts.meta_host, "10.1.2.3");
    ck_assert_uint_eq(a.opts.meta_port, 7555);
    ck_assert_uint_eq(a.opts.threads, 5);
    ck_assert_uint_eq(a.opts.readahead_bytes, 16u << 20);
    ck_assert_int_eq(a.opts.io_mode, FS_IO_DIRECT);
    ck_assert_uint_eq(a.opts.buffer_keep_ms, 30u * 60 * 1000); /* the default */
    ck_assert(a.opts.splice);
    ck_assert(!a.foreground);
    ck_assert_int_ge(a.fuse_argc, 1);
    fs_args_free(&a);
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

START_TEST(test_o_options)
{
    struct fs_args a;
    char err[512], o[512];

    snprintf(o, sizeof(o), "conf=%s,meta=127.0.0.1:9999,dirty_limit=128M,threads=4,"
                           "allow_other,io=mixed,nosplice,default_permissions,buffer_keep=90s", conf);
    ck_assert_int_eq(parse(&a, err, 6, "mount.ckptfs", "ckptfs", mnt, "-o", o, "-f"), 0);
    ck_assert_str_eq(a.mountpoint, mnt);
    ck_assert_str_eq(a.opts.meta_host, "127.0.0.1");
    ck_assert_uint_eq(a.opts.meta_port, 9999);
    ck_assert_uint_eq(a.opts.dirty_limit_bytes, 128u << 20);
    ck_assert_uint_eq(a.opts.threads, 4);
    ck_assert_int_eq(a.opts.io_mode, FS_IO_MIXED);
    ck_assert(!a.opts.splice);
    ck_assert_uint_eq(a.opts.buffer_keep_ms, 90000);
    ck_assert(a.opts.local_read); /* short-circuit reads are the default */
    ck_assert(a.foreground);
    ck_assert(fuse_has(&a, "allow_other"));
    ck_assert(fuse_has(&a, "default_permissions"));
    ck_assert(!fuse_has(&a, "dirty_limit"));
    ck_assert(!fuse_has(&a, "meta="));
    fs_args_free(&a);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "local", mnt), 0);
    ck_assert(a.opts.local_read);
    ck_assert(!fuse_has(&a, "local"));
    fs_args_free(&a);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "nolocal", mnt), 0);
    ck_assert(!a.opts.local_read);
    ck_assert(!fuse_has(&a, "nolocal"));
    fs_args_free(&a);
}
END_TEST

START_TEST(test_set_and_env)
{
    struct fs_args a;
    char err[512];

    setenv("CKPTFS_CONF", conf, 1);
    ck_assert_int_eq(parse(&a, err, 4, "ckptfs", "--set", "client.threads=3", mnt), 0);
    ck_assert_uint_eq(a.opts.threads, 3);            /* --set over the file */
    ck_assert_str_eq(a.opts.meta_host, "10.1.2.3");  /* the file via $CKPTFS_CONF */
    fs_args_free(&a);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "--set", "client.threads=3", "-o",
                           "threads=7", mnt), 0);
    ck_assert_uint_eq(a.opts.threads, 7);            /* -o over --set */
    fs_args_free(&a);
    unsetenv("CKPTFS_CONF");
}
END_TEST

START_TEST(test_errors)
{
    struct fs_args a;
    char err[512], o[400];

    ck_assert_int_eq(parse(&a, err, 1, "ckptfs"), FS_ARGS_USAGE);
    ck_assert_int_eq(parse(&a, err, 3, "ckptfs", "-c", conf), FS_ARGS_USAGE);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "a", "b", mnt), FS_ARGS_USAGE);
    ck_assert_int_eq(parse(&a, err, 5, "ckptfs", "-c", conf, "--bogus", mnt), FS_ARGS_USAGE);
    /* Bad values are rejected like in the config file. */
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "dirty_limit=1K", mnt),
                     FS_ARGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "dirty_limit"));
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "io=bogus", mnt),
                     FS_ARGS_ERROR);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "meta=nohostport", mnt),
                     FS_ARGS_ERROR);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "threads=0", mnt),
                     FS_ARGS_ERROR);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", "local,nolocal", mnt),
                     FS_ARGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "contradict"));
    /* A config file named explicitly must exist. */
    ck_assert_int_eq(parse(&a, err, 4, "ckptfs", "-c", "/nonexistent/ckptfs.conf", mnt),
                     FS_ARGS_ERROR);
    /* The mountpoint must be a directory. */
    ck_assert_int_eq(parse(&a, err, 4, "ckptfs", "-c", conf, notdir), FS_ARGS_ERROR);
    /* The cluster key must load. */
    snprintf(o, sizeof(o), "key_file=%s/missing.key", dir);
    ck_assert_int_eq(parse(&a, err, 6, "ckptfs", "-c", conf, "-o", o, mnt), FS_ARGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "missing.key"));
}
END_TEST

START_TEST(test_help_version)
{
    struct fs_args a;
    char err[512];

    ck_assert_int_eq(parse(&a, err, 2, "ckptfs", "--help"), 0);
    ck_assert(a.help);
    fs_args_free(&a);
    ck_assert_int_eq(parse(&a, err, 2, "ckptfs", "-V"), 0);
    ck_assert(a.version);
    fs_args_free(&a);
}
END_TEST

Suite *fs_args_suite(void)
{
    Suite *s = suite_create("fs_args");
    TCase *tc = tcase_create("args");
    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_basic_conf);
    tcase_add_test(tc, test_o_options);
    tcase_add_test(tc, test_set_and_env);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_help_version);
    suite_add_tcase(s, tc);
    return s;
}
