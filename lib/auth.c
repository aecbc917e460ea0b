/*
 * auth.c - see auth.h.
 *
 * DESIGN: libsodium's crypto_auth_hmacsha256 (HMAC-SHA-256) and
 * sodium_memcmp for constant-time comparison; randombytes_buf for nonces.
 * Key files are written with O_EXCL so an existing key is never replaced.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

int ckpt_auth_init(void)
{
    return sodium_init() < 0 ? -EIO : 0;
}

int ckpt_auth_key_generate(const char *path)
{
    uint8_t key[CKPT_AUTH_KEY_LEN];
    char hex[CKPT_AUTH_KEY_LEN * 2 + 2];
    int rc = ckpt_auth_init();
    if (rc < 0)
        return rc;
    randombytes_buf(key, sizeof(key));
    sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    size_t len = strlen(hex);
    hex[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, hex, len);
    if (w != (ssize_t)len) {
        rc = w < 0 ? -errno : -EIO;
        goto out_unlink;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out_unlink;
    }
    sodium_memzero(hex, sizeof(hex));
    close(fd);
    return 0;
out_unlink:
    sodium_memzero(hex, sizeof(hex));
    close(fd);
    unlink(path);
    return rc;
}

int ckpt_auth_key_load(const char *path, uint8_t out_key[CKPT_AUTH_KEY_LEN],
                       bool *out_too_open)
{
    char buf[256];
    struct stat st;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (out_too_open)
        *out_too_open = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        rc = -errno;
        goto out;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    size_t bin_len = 0;
    const char *end = NULL;
    if (n != CKPT_AUTH_KEY_LEN * 2 ||
        sodium_hex2bin(out_key, CKPT_AUTH_KEY_LEN, buf, (size_t)n, NULL, &bin_len,
                       &end) != 0 ||
        bin_len != CKPT_AUTH_KEY_LEN || *end != '\0')
        rc = CKPT_E_CONFIG;
out:
    sodium_memzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

void ckpt_auth_nonce(uint8_t out_nonce[CKPT_AUTH_NONCE_LEN])
{
    randombytes_buf(out_nonce, CKPT_AUTH_NONCE_LEN);
}

void ckpt_auth_proof(uint8_t out_proof[CKPT_AUTH_PROOF_LEN],
                     const uint8_t key[CKPT_AUTH_KEY_LEN], enum ckpt_auth_role role,
                     const uint8_t client_nonce[CKPT_AUTH_NONCE_LEN],
                     const uint8_t server_nonce[CKPT_AUTH_NONCE_LEN])
{
    static const char *const labels[] = {"ckptfs-server", "ckptfs-client"};
    crypto_auth_hmacsha256_state st;
    const char *label = labels[role == CKPT_AUTH_CLIENT];
    crypto_auth_hmacsha256_init(&st, key, CKPT_AUTH_KEY_LEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, strlen(label));
    crypto_auth_hmacsha256_update(&st, client_nonce, CKPT_AUTH_NONCE_LEN);
    crypto_auth_hmacsha256_update(&st, server_nonce, CKPT_AUTH_NONCE_LEN);
    crypto_auth_hmacsha256_final(&st, out_proof);
    sodium_memzero(&st, sizeof(st));
}

bool ckpt_auth_proof_ok(const uint8_t proof[CKPT_AUTH_PROOF_LEN],
                        const uint8_t key[CKPT_AUTH_KEY_LEN], enum ckpt_auth_role role,
                        const uint8_t client_nonce[CKPT_AUTH_NONCE_LEN],
                        const uint8_t server_nonce[CKPT_AUTH_NONCE_LEN])
{
    uint8_t want[CKPT_AUTH_PROOF_LEN];
    ckpt_auth_proof(want, key, role, client_nonce, server_nonce);
    bool ok = sodium_memcmp(want, proof, CKPT_AUTH_PROOF_LEN) == 0;
    sodium_memzero(want, sizeof(want));
    return ok;
}
