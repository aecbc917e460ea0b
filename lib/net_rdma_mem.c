/*
 * net_rdma_mem.c - registered memory of the RDMA transport: per net, the
 * RDMA devices librdmacm knows (rdma_get_devices), one protection domain on
 * each, and a sorted index of the buffers registered with them.
 *
 * DESIGN: ckpt_rdma_buf_alloc() registers a page-aligned buffer once with
 * every device (local write, remote read, remote write: the peer READs
 * request bulk from it and WRITEs response bulk into it); net.c keeps freed
 * buffers in its size-class cache (ckpt_net_buf_alloc), so registration
 * happens when the cache grows, never per request.  Lookups (every bulk
 * piece of every message) take the read side of reg_lock and binary-search
 * the index: O(log n).  Insertion and removal are O(n) memmoves, paid only
 * when the cache grows or shrinks.
 *
 * Known limits: one MR per buffer per device.  On ConnectX, a few large
 * MRs over huge pages would use the HCA's translation cache better.
 */
#include <errno.h>
#include <string.h>

#include <rdma/rdma_cma.h>

#include "alloc.h"
#include "log.h"
#include "net_rdma_int.h"

void ckpt_rdma_ctx_destroy(void *arg)
{
    struct rm_ctx *x = arg;
    if (!x)
        return;
    if (x->nregs)
        CKPT_LOG_WARN("rdma: %zu registered buffers still allocated at teardown", x->nregs);
    for (size_t i = 0; i < x->nregs; i++) {
        for (int d = 0; d < x->ndev; d++)
            if (x->regs[i].mr[d])
                ibv_dereg_mr(x->regs[i].mr[d]);
        ckpt_free((void *)x->regs[i].base);
    }
    ckpt_free(x->regs);
    for (int d = 0; d < x->ndev; d++)
        if (x->pd[d])
            ibv_dealloc_pd(x->pd[d]);
    if (x->devlist)
        rdma_free_devices(x->devlist);
    pthread_rwlock_destroy(&x->reg_lock);
    ckpt_free(x);
}

int ckpt_rdma_ctx_create(ckpt_net *net, void **out)
{
    struct rm_ctx *x = ckpt_calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->net = net;
    pthread_rwlock_init(&x->reg_lock, NULL);
    int n = 0;
    x->devlist = rdma_get_devices(&n);
    if (!x->devlist || n <= 0) {
        ckpt_rdma_ctx_destroy(x);
        return -ENODEV;
    }
    x->ndev = n < RM_MAX_DEVS ? n : RM_MAX_DEVS;
    for (int d = 0; d < x->ndev; d++) {
        struct ibv_device_attr attr;
        x->pd[d] = ibv_alloc_pd(x->devlist[d]);
        if (!x->pd[d]) {
            int rc = errno ? -errno : -ENODEV;
            ckpt_rdma_ctx_destroy(x);
            return rc;
        }
        x->rd_atom[d] = 4;
        if (ibv_query_device(x->devlist[d], &attr) == 0) {
            int a = attr.max_qp_rd_atom < attr.max_qp_init_rd_atom ? attr.max_qp_rd_atom
                                                                    : attr.max_qp_init_rd_atom;
            x->rd_atom[d] = (uint8_t)(a > 16 ? 16 : (a < 1 ? 1 : a));
        }
    }
    *out = x;
    return 0;
}

/* Index of the first region whose base is > p.  Caller holds reg_lock. */
static size_t reg_upper_locked(const struct rm_ctx *x, uintptr_t p)
{
    size_t lo = 0, hi = x->nregs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->regs[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool ckpt_rdma_reg_lookup(struct rm_ctx *x, int dev, const void *p, size_t len, uint32_t *lkey,
                       uint32_t *rkey)
{
    uintptr_t a = (uintptr_t)p;
    bool ok = false;
    pthread_rwlock_rdlock(&x->reg_lock);
    size_t i = reg_upper_locked(x, a);
    if (i > 0) {
        const struct rm_reg *r = &x->regs[i - 1];
        if (a - r->base <= r->len && len <= r->len - (a - r->base) && r->mr[dev]) {
            *lkey = r->mr[dev]->lkey;
            *rkey = r->mr[dev]->rkey;
            ok = true;
        }
    }
    pthread_rwlock_unlock(&x->reg_lock);
    return ok;
}

static void reg_release(struct rm_ctx *x, struct rm_reg *r)
{
    for (int d = 0; d < x->ndev; d++)
        if (r->mr[d])
            ibv_dereg_mr(r->mr[d]);
}

void *ckpt_rdma_buf_alloc(void *arg, size_t len)
{
    struct rm_ctx *x = arg;
    size_t size = (len + 4095) & ~(size_t)4095;
    if (!size)
        size = 4096;
    void *p = ckpt_aligned_alloc(4096, size);
    if (!p)
        return NULL;
    struct rm_reg r = {.base = (uintptr_t)p, .len = size};
    for (int d = 0; d < x->ndev; d++) {
        r.mr[d] = ibv_reg_mr(x->pd[d], p, size,
                             IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
                                 IBV_ACCESS_REMOTE_WRITE);
        if (!r.mr[d]) {
            reg_release(x, &r);
            ckpt_free(p);
            return NULL;
        }
    }
    pthread_rwlock_wrlock(&x->reg_lock);
    if (x->nregs == x->capregs) {
        size_t ncap = x->capregs ? x->capregs * 2 : 64;
        struct rm_reg *nr = ckpt_realloc(x->regs, ncap * sizeof(*nr));
        if (!nr) {
            pthread_rwlock_unlock(&x->reg_lock);
            reg_release(x, &r);
            ckpt_free(p);
            return NULL;
        }
        x->regs = nr;
        x->capregs = ncap;
    }
    size_t i = reg_upper_locked(x, r.base);
    memmove(&x->regs[i + 1], &x->regs[i], (x->nregs - i) * sizeof(*x->regs));
    x->regs[i] = r;
    x->nregs++;
    pthread_rwlock_unlock(&x->reg_lock);
    return p;
}

void ckpt_rdma_buf_free(void *arg, void *buf, size_t len)
{
    struct rm_ctx *x = arg;
    (void)len;
    if (!buf)
        return;
    struct rm_reg r = {0};
    bool found = false;
    pthread_rwlock_wrlock(&x->reg_lock);
    size_t i = reg_upper_locked(x, (uintptr_t)buf);
    if (i > 0 && x->regs[i - 1].base == (uintptr_t)buf) {
        r = x->regs[i - 1];
        memmove(&x->regs[i - 1], &x->regs[i], (x->nregs - i) * sizeof(*x->regs));
        x->nregs--;
        found = true;
    }
    pthread_rwlock_unlock(&x->reg_lock);
    if (!found) {
        CKPT_LOG_WARN("rdma: freeing a buffer that is not registered (%p)", buf);
        return;
    }
    reg_release(x, &r);
    ckpt_free(buf);
}

