/*
 * net_rdma_int.h - state shared by the RDMA transport's files (private to
 * lib/net_rdma*.c): the per-net devices, protection domains and the index
 * of registered memory (net_rdma_mem.c), used by the connections of
 * net_rdma.c.
 */
#ifndef CKPT_NET_RDMA_INT_H
#define CKPT_NET_RDMA_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>

#include "net.h"

#define RM_MAX_DEVS 8

struct rm_reg {
    uintptr_t base;
    size_t len;
    struct ibv_mr *mr[RM_MAX_DEVS];
};

struct rm_ctx {
    ckpt_net *net;
    struct ibv_context **devlist; /* rdma_get_devices(); freed at destroy */
    int ndev;
    struct ibv_pd *pd[RM_MAX_DEVS];
    uint8_t rd_atom[RM_MAX_DEVS];
    pthread_rwlock_t reg_lock;
    struct rm_reg *regs; /* sorted by base; protected by reg_lock */
    size_t nregs;        /* protected by reg_lock */
    size_t capregs;      /* protected by reg_lock */
};

/**
 * @brief Find the RDMA devices and allocate a protection domain on each.
 * @return 0 and *out (a struct rm_ctx); -ENODEV when librdmacm knows no
 *         device (no RDMA stack, no hardware, no rxe); -ENOMEM; -errno.
 */
int ckpt_rdma_ctx_create(ckpt_net *net, void **out);
/** @brief Free the PDs, device list and any registration left.  NULL ok. */
void ckpt_rdma_ctx_destroy(void *ctx);
/**
 * @brief Keys of the registered region holding [p, p+len) on device dev.
 * @return false when that range is not (wholly) in one registered buffer.
 * Thread-safe (read lock).
 */
bool ckpt_rdma_reg_lookup(struct rm_ctx *x, int dev, const void *p, size_t len,
                          uint32_t *lkey, uint32_t *rkey);
/** @brief A page-aligned buffer of at least len bytes, registered with every
 *  device for local write, remote read and remote write.  NULL on failure. */
void *ckpt_rdma_buf_alloc(void *ctx, size_t len);
/** @brief Deregister and free a buffer of ckpt_rdma_buf_alloc(). */
void ckpt_rdma_buf_free(void *ctx, void *buf, size_t len);

#endif
