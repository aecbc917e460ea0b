/* err.c - see err.h. */
#include "err.h"

#include <errno.h>
#include <string.h>

static const char *const proj_msgs[] = {
    [-(CKPT_E_CRC - CKPT_E_BASE)] = "checksum mismatch",
    [-(CKPT_E_PROTO - CKPT_E_BASE)] = "malformed protocol message",
    [-(CKPT_E_AUTH - CKPT_E_BASE)] = "authentication failed (cluster key)",
    [-(CKPT_E_STALE - CKPT_E_BASE)] = "stale epoch or generation",
    [-(CKPT_E_UNRECOV - CKPT_E_BASE)] = "too many chunks lost to decode",
    [-(CKPT_E_VERSION - CKPT_E_BASE)] = "version mismatch",
    [-(CKPT_E_CONFIG - CKPT_E_BASE)] = "invalid configuration",
    [-(CKPT_E_CLOSED - CKPT_E_BASE)] = "connection closed",
    [-(CKPT_E_TORN - CKPT_E_BASE)] = "incomplete (torn) chunk",
    [-(CKPT_E_CLUSTER - CKPT_E_BASE)] = "belongs to another cluster",
};

const char *ckpt_strerror(int rc)
{
    if (rc >= 0)
        return "success";
    if (rc < CKPT_E_BASE && rc > CKPT_E_LAST) {
        const char *m = proj_msgs[-(rc - CKPT_E_BASE)];
        return m ? m : "unknown ckptfs error";
    }
    if (rc > -4096)
        return strerrordesc_np(-rc) ? strerrordesc_np(-rc) : "unknown error";
    return "unknown error";
}

int ckpt_err_to_errno(int rc)
{
    if (rc >= 0)
        return 0;
    switch (rc) {
    case CKPT_E_AUTH: return EACCES;
    case CKPT_E_CLOSED: return ENOTCONN;
    case CKPT_E_STALE: return ESTALE;
    case CKPT_E_CONFIG: return EINVAL;
    case CKPT_E_VERSION: return EPROTO;
    case CKPT_E_PROTO: return EPROTO;
    default: break;
    }
    if (rc <= CKPT_E_BASE)
        return EIO;
    return -rc;
}
