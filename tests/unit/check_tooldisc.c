/*
 * check_tooldisc.c - unit tests for lib/tooldisc.c: mountinfo unescaping
 * and parsing (escaped spaces, tabs, newlines and backslashes in mount
 * points and sources, optional tag fields, malformed lines), choosing the
 * FUSE mount that holds a path (longest prefix, sibling prefixes, non-FUSE
 * mounts ignored, stacked mounts), the fsname <-> config path round trip,
 * and the config precedence (-c, $CKPTFS_CONF, the mount's config file,
 * missing files) on a mountinfo file written by the test, and the
 * producer side of the contract: the fsname fs/fs_args.c hands to libfuse.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "fs_args.h"
#include "tooldisc.h"

Suite *tooldisc_suite(void);

/* A temp dir per test, with helpers to write files into it. */
static char g_dir[64];

static void dir_setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/check_tooldisc.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void dir_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_unescape)
{
    char s[64];
    snprintf(s, sizeof(s), "/mnt/a\\040b\\011c\\012d\\134e");
    ckpt_tooldisc_unescape(s);
    ck_assert_str_eq(s, "/mnt/a b\tc\nd\\e");
    /* Not an escape: kept. */
    snprintf(s, sizeof(s), "a\\9bc\\04\\");
    ckpt_tooldisc_unescape(s);
    ck_assert_str_eq(s, "a\\9bc\\04\\");
    snprintf(s, sizeof(s), "%s", "");
    ckpt_tooldisc_unescape(s);
    ck_assert_str_eq(s, "");
}
END_TEST

START_TEST(test_parse_line)
{
    struct ckpt_tooldisc_mount m;
    const char *l1 = "36 35 0:33 / /mnt/my\\040ckpt rw,nosuid,nodev,relatime shared:1 - "
                     "fuse.ckptfs ckptfs:/etc/my\\040conf/ckptfs.conf "
                     "rw,user_id=0,group_id=0\n";
    ck_assert_int_eq(ckpt_tooldisc_parse_line(l1, &m), 0);
    ck_assert_str_eq(m.point, "/mnt/my ckpt");
    ck_assert_str_eq(m.fstype, "fuse.ckptfs");
    ck_assert_str_eq(m.source, "ckptfs:/etc/my conf/ckptfs.conf");

    /* No optional tags, no trailing newline, a backslash in the point. */
    const char *l2 = "22 1 8:1 / /data\\134x rw - ext4 /dev/sda1 rw";
    ck_assert_int_eq(ckpt_tooldisc_parse_line(l2, &m), 0);
    ck_assert_str_eq(m.point, "/data\\x");
    ck_assert_str_eq(m.fstype, "ext4");
    ck_assert_str_eq(m.source, "/dev/sda1");

    /* Several tags. */
    const char *l3 = "40 36 0:40 / /a\\012b rw shared:3 master:1 propagate_from:1 - fuse f rw";
    ck_assert_int_eq(ckpt_tooldisc_parse_line(l3, &m), 0);
    ck_assert_str_eq(m.point, "/a\nb");
    ck_assert_str_eq(m.fstype, "fuse");
    ck_assert_str_eq(m.source, "f");

    /* Malformed. */
    ck_assert_int_eq(ckpt_tooldisc_parse_line("", &m), -EINVAL);
    ck_assert_int_eq(ckpt_tooldisc_parse_line("1 2 3:4 /\n", &m), -EINVAL);
    ck_assert_int_eq(ckpt_tooldisc_parse_line("1 2 3:4 / /x rw shared:1\n", &m), -EINVAL);
    ck_assert_int_eq(ckpt_tooldisc_parse_line("1 2 3:4 / /x rw - \n", &m), -EINVAL);

    /* A mount point longer than PATH_MAX does not fit. */
    size_t big = PATH_MAX + 64;
    char *l4 = ckpt_malloc(big + 64);
    ck_assert_ptr_nonnull(l4);
    int o = snprintf(l4, 64, "1 2 3:4 / /");
    memset(l4 + o, 'x', big);
    snprintf(l4 + o + big, 64, " rw - fuse f rw");
    ck_assert_int_eq(ckpt_tooldisc_parse_line(l4, &m), -EINVAL);
    ckpt_free(l4);
}
END_TEST

static const char *g_mountinfo_text =
    "20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    "30 20 0:30 / /mnt/ck rw - fuse.ckptfs ckptfs:/etc/a.conf rw\n"
    "31 20 0:31 / /mnt/ck\\040two rw shared:2 - fuse.ckptfs ckptfs:/etc/b\\054c.conf rw\n"
    "32 30 0:32 / /mnt/ck/inner rw - fuse.other other rw\n"
    "33 20 0:33 / /mnt/disk rw - xfs /dev/sdb rw\n"
    "34 20 0:34 / /mnt/stack rw - fuse.ckptfs ckptfs:/etc/old.conf rw\n"
    "35 20 0:35 / /mnt/stack rw - fuse.ckptfs ckptfs:/etc/new.conf rw\n"
    "garbage line\n";

START_TEST(test_find_mount)
{
    char mi[128];
    struct ckpt_tooldisc_mount m;
    dir_setup();
    snprintf(mi, sizeof(mi), "%s/mountinfo", g_dir);
    write_file(mi, g_mountinfo_text);

    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/ck", &m), 0);
    ck_assert_str_eq(m.point, "/mnt/ck");
    ck_assert_str_eq(m.source, "ckptfs:/etc/a.conf");
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/ck/job/step-1", &m), 0);
    ck_assert_str_eq(m.point, "/mnt/ck");
    /* A sibling whose name starts with the same letters. */
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/ck two/job", &m), 0);
    ck_assert_str_eq(m.point, "/mnt/ck two");
    ck_assert_str_eq(m.source, "ckptfs:/etc/b,c.conf");
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/ckx", &m), -ENOENT);
    /* The longest prefix wins, whatever its FUSE subtype. */
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/ck/inner/f", &m), 0);
    ck_assert_str_eq(m.point, "/mnt/ck/inner");
    ck_assert_str_eq(m.fstype, "fuse.other");
    /* Not FUSE. */
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/disk/x", &m), -ENOENT);
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/home", &m), -ENOENT);
    /* Two mounts on one point: the later one is visible. */
    ck_assert_int_eq(ckpt_tooldisc_find_mount(mi, "/mnt/stack/j", &m), 0);
    ck_assert_str_eq(m.source, "ckptfs:/etc/new.conf");
    /* No such file. */
    char nf[128];
    snprintf(nf, sizeof(nf), "%s/none", g_dir);
    ck_assert_int_eq(ckpt_tooldisc_find_mount(nf, "/mnt/ck", &m), -ENOENT);
    dir_teardown();
}
END_TEST

START_TEST(test_fsname_round_trip)
{
    char fs[256], back[256];
    struct ckpt_tooldisc_mount m;

    ck_assert_int_eq(ckpt_tooldisc_fsname("/etc/ckptfs/ckptfs.conf", fs, sizeof(fs)), 0);
    ck_assert_str_eq(fs, "ckptfs:/etc/ckptfs/ckptfs.conf");
    ck_assert_int_eq(ckpt_tooldisc_fsname("/a,b\\c", fs, sizeof(fs)), 0);
    ck_assert_str_eq(fs, "ckptfs:/a\\,b\\\\c");
    ck_assert_int_eq(ckpt_tooldisc_fsname("rel/path", fs, sizeof(fs)), -EINVAL);
    ck_assert_int_eq(ckpt_tooldisc_fsname(NULL, fs, sizeof(fs)), -EINVAL);
    ck_assert_int_eq(ckpt_tooldisc_fsname("/etc/ckptfs.conf", fs, 10), -ENAMETOOLONG);
    ck_assert_int_eq(ckpt_tooldisc_fsname("/a,b", fs, 12), -ENAMETOOLONG);
    ck_assert_int_eq(ckpt_tooldisc_fsname("/a,b", fs, 13), 0);
    ck_assert_str_eq(fs, "ckptfs:/a\\,b");

    /* What the kernel shows for a source with a space, parsed back. */
    ck_assert_int_eq(ckpt_tooldisc_parse_line(
                         "1 2 0:9 / /m rw - fuse.ckptfs ckptfs:/my\\040dir/c.conf rw", &m), 0);
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source(m.source, back, sizeof(back)), 0);
    ck_assert_str_eq(back, "/my dir/c.conf");
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source("ckptfs", back, sizeof(back)), -ENOENT);
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source("ckptfs:", back, sizeof(back)), -ENOENT);
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source("ckptfs:rel", back, sizeof(back)), -ENOENT);
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source("/dev/sda1", back, sizeof(back)), -ENOENT);
    ck_assert_int_eq(ckpt_tooldisc_conf_of_source("ckptfs:/abcdef", back, 7), -ENAMETOOLONG);
}
END_TEST

/* Config precedence: write two config files and a mountinfo in which the
 * temp dir itself is a ckptfs mount recording the first one. */
START_TEST(test_config_precedence)
{
    char mi[128], ca[128], cb[128], key[128], used[PATH_MAX], err[512], text[512];
    struct ckpt_config cfg;
    struct ckpt_tooldisc_opts o;

    dir_setup();
    snprintf(key, sizeof(key), "%s/key", g_dir);
    snprintf(ca, sizeof(ca), "%s/a.conf", g_dir);
    snprintf(cb, sizeof(cb), "%s/b.conf", g_dir);
    snprintf(mi, sizeof(mi), "%s/mountinfo", g_dir);
    snprintf(text, sizeof(text), "[cluster]\nmeta = 127.0.0.1:7001\nkey_file = %s\n", key);
    write_file(ca, text);
    snprintf(text, sizeof(text), "[cluster]\nmeta = 127.0.0.1:7002\nkey_file = %s\n", key);
    write_file(cb, text);
    snprintf(text, sizeof(text), "1 0 0:9 / %s rw - fuse.ckptfs ckptfs:%s rw\n", g_dir, ca);
    write_file(mi, text);
    mkdir(strcat(strcpy(text, g_dir), "/job"), 0755);

    char *saved = getenv("CKPTFS_CONF") ? strdup(getenv("CKPTFS_CONF")) : NULL;
    unsetenv("CKPTFS_CONF");
    memset(&o, 0, sizeof(o));
    o.mountinfo = mi;

    /* The mount holding the path names a.conf. */
    o.path = text; /* g_dir/job */
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)), 0);
    ck_assert_str_eq(used, ca);
    ck_assert_uint_eq(cfg.cluster.meta.port, 7001);
    ckpt_config_free(&cfg);

    /* $CKPTFS_CONF beats the mount; -c beats both. */
    setenv("CKPTFS_CONF", cb, 1);
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.cluster.meta.port, 7002);
    ckpt_config_free(&cfg);
    unsetenv("CKPTFS_CONF");
    o.conf = cb;
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)), 0);
    ck_assert_str_eq(used, cb);
    ckpt_config_free(&cfg);

    /* --set overrides the file; a bad --set is a config error. */
    o.conf = NULL;
    const char *sets[] = {"cluster.meta=127.0.0.1:7005"};
    o.sets = sets;
    o.nsets = 1;
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.cluster.meta.port, 7005);
    ckpt_config_free(&cfg);
    const char *bad[] = {"cluster.nosuchkey=1"};
    o.sets = bad;
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "nosuchkey"));
    ckpt_config_free(&cfg);
    o.sets = NULL;
    o.nsets = 0;

    /* An explicit file that is missing is an error, naming its origin. */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.conf", g_dir);
    o.conf = missing;
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)),
                     -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "-c"));
    ckpt_config_free(&cfg);
    o.conf = NULL;

    /* The file a mount recorded is gone: an error, not another cluster. */
    ck_assert_int_eq(unlink(ca), 0);
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)),
                     -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "mount"));
    ckpt_config_free(&cfg);

    if (saved) {
        setenv("CKPTFS_CONF", saved, 1);
        free(saved);
    }
    dir_teardown();
}
END_TEST

/* Connecting with a missing key file fails cleanly (nothing leaks). */
START_TEST(test_connect_no_key)
{
    struct ckpt_config cfg;
    struct ckpt_tooldisc_conn conn;
    char err[512], used[PATH_MAX], text[256], ca[128];
    struct ckpt_tooldisc_opts o;
    long live = ckpt_alloc_live();

    dir_setup();
    snprintf(ca, sizeof(ca), "%s/a.conf", g_dir);
    snprintf(text, sizeof(text), "[cluster]\nmeta = 127.0.0.1:1\nkey_file = %s/nokey\n", g_dir);
    write_file(ca, text);
    memset(&o, 0, sizeof(o));
    o.conf = ca;
    ck_assert_int_eq(ckpt_tooldisc_config(&o, &cfg, used, sizeof(used), err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_tooldisc_connect(&cfg, "test", true, &conn, err, sizeof(err)),
                     -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "nokey"));
    ck_assert_ptr_null(conn.net);
    ckpt_tooldisc_disconnect(&conn); /* zeroed: a no-op */
    ckpt_config_free(&cfg);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    dir_teardown();
}
END_TEST

/* fs_args_parse() adds -ofsname=ckptfs:<absolute config path> when a config
 * file was read, keeps an fsname given with -o, and adds none without a
 * config file. */
static const char *fsname_arg(const struct fs_args *a)
{
    for (int i = 0; i < a->fuse_argc; i++)
        if (strstr(a->fuse_argv[i], "fsname="))
            return a->fuse_argv[i];
    return NULL;
}

START_TEST(test_fs_args_fsname)
{
    char keyf[128], conf[128], mnt[128], text[256], err[512], opt[300], want[300];
    struct fs_args a;
    long live = ckpt_alloc_live();

    dir_setup();
    snprintf(keyf, sizeof(keyf), "%s/cluster.key", g_dir);
    snprintf(conf, sizeof(conf), "%s/my,conf", g_dir);
    snprintf(mnt, sizeof(mnt), "%s/mnt", g_dir);
    ck_assert_int_eq(ckpt_auth_key_generate(keyf), 0);
    ck_assert_int_eq(mkdir(mnt, 0755), 0);
    snprintf(text, sizeof(text), "[cluster]\nkey_file = %s\nmeta = 10.1.2.3:7555\n", keyf);
    write_file(conf, text);
    char *saved = getenv("CKPTFS_CONF") ? strdup(getenv("CKPTFS_CONF")) : NULL;
    unsetenv("CKPTFS_CONF");

    /* -c with a relative path: the fsname holds the absolute one, its ','
     * escaped for libfuse's option parser. */
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_int_eq(chdir(g_dir), 0);
    char *argv1[] = {"ckptfs", "-c", "my,conf", mnt, NULL};
    ck_assert_int_eq(fs_args_parse(4, argv1, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(chdir(cwd), 0);
    snprintf(want, sizeof(want), "-ofsname=ckptfs:%s/my\\,conf", g_dir);
    ck_assert_ptr_nonnull(fsname_arg(&a));
    ck_assert_str_eq(fsname_arg(&a), want);
    fs_args_free(&a);

    /* -o fsname= given: kept, no second one. */
    char *argv2[] = {"ckptfs", "-c", conf, "-o", "fsname=mine", mnt, NULL};
    ck_assert_int_eq(fs_args_parse(6, argv2, &a, err, sizeof(err)), 0);
    int n = 0;
    for (int i = 0; i < a.fuse_argc; i++)
        n += strstr(a.fuse_argv[i], "fsname=") != NULL;
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(fsname_arg(&a), "fsname=mine"));
    fs_args_free(&a);

    /* No config file (/etc/ckptfs/ckptfs.conf absent here is not certain,
     * so only when it is): meta= and key_file= on the command line. */
    if (access(CKPT_CONFIG_DEFAULT_PATH, F_OK) != 0) {
        snprintf(opt, sizeof(opt), "meta=10.1.2.3:7555,key_file=%s", keyf);
        char *argv3[] = {"ckptfs", "-o", opt, mnt, NULL};
        ck_assert_int_eq(fs_args_parse(4, argv3, &a, err, sizeof(err)), 0);
        ck_assert_ptr_null(fsname_arg(&a));
        fs_args_free(&a);
    }

    if (saved) {
        setenv("CKPTFS_CONF", saved, 1);
        free(saved);
    }
    ck_assert_int_eq(ckpt_alloc_live(), live);
    dir_teardown();
}
END_TEST

Suite *tooldisc_suite(void)
{
    Suite *s = suite_create("tooldisc");
    TCase *tc = tcase_create("mountinfo");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_unescape);
    tcase_add_test(tc, test_parse_line);
    tcase_add_test(tc, test_find_mount);
    tcase_add_test(tc, test_fsname_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_config_precedence);
    tcase_add_test(tc, test_connect_no_key);
    tcase_add_test(tc, test_fs_args_fsname);
    suite_add_tcase(s, tc);
    return s;
}
