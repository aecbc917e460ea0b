/*
 * ckpt-node - the ckptfs storage daemon.
 *
 * Not implemented yet beyond --help and --version: its issue is still open.
 */
#include <stdio.h>
#include <string.h>

#include "version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ckpt-node [-h|--help] [-V|--version]\n"
               "the ckptfs storage daemon (not implemented yet in this build).\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("ckpt-node %s\n", CKPT_VERSION_STRING);
            return 0;
        }
    }
    usage(stderr);
    return 2;
}
