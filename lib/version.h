/* version.h - the ckptfs release version, shown by every program's -V. */
#ifndef CKPT_VERSION_H
#define CKPT_VERSION_H
#define CKPT_VERSION_STRING "0.1.0"
#define CKPT_VERSION_MAJOR 0
#define CKPT_VERSION_MINOR 1
#endif
