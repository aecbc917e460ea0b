/*
 * auth.h - the cluster key and the challenge-response that proves it.
 *
 * Every ckptfs process of a cluster holds the same 256-bit cluster key,
 * stored as 64 hex digits in a file readable only by its owner.  When a
 * connection opens (net.c), each side sends a fresh 32-byte random nonce,
 * and each proves it holds the key by sending
 *     HMAC-SHA256(key, role || client_nonce || server_nonce)
 * with role "ckptfs-server" or "ckptfs-client", so neither proof can be
 * replayed as the other nor on another connection.  Proofs are compared in
 * constant time.  Implemented with libsodium.
 */
#ifndef CKPT_AUTH_H
#define CKPT_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#define CKPT_AUTH_KEY_LEN 32
#define CKPT_AUTH_NONCE_LEN 32
#define CKPT_AUTH_PROOF_LEN 32

enum ckpt_auth_role {
    CKPT_AUTH_SERVER,
    CKPT_AUTH_CLIENT,
};

/** @brief Initialise libsodium (idempotent, thread-safe).  @return 0 or -EIO. */
int ckpt_auth_init(void);

/**
 * @brief Create a new random key file at path, mode 0600.
 * @return 0; -EEXIST if the file exists (a key is never overwritten);
 *         -errno from open/write/fsync.
 */
int ckpt_auth_key_generate(const char *path);

/**
 * @brief Load a key file (64 hex digits, optional trailing newline).
 * @param[out] out_key
 * @param[out] out_too_open  if non-NULL, set true when group or others may
 *             read the file (the caller should warn)
 * @return 0; -ENOENT, -EACCES, -errno from open/read; CKPT_E_CONFIG when
 *         the content is not exactly 64 hex digits.
 */
int ckpt_auth_key_load(const char *path, uint8_t out_key[CKPT_AUTH_KEY_LEN],
                       bool *out_too_open);

/** @brief Fill nonce with random bytes. */
void ckpt_auth_nonce(uint8_t out_nonce[CKPT_AUTH_NONCE_LEN]);

/** @brief Compute the proof of role for this nonce pair. */
void ckpt_auth_proof(uint8_t out_proof[CKPT_AUTH_PROOF_LEN],
                     const uint8_t key[CKPT_AUTH_KEY_LEN], enum ckpt_auth_role role,
                     const uint8_t client_nonce[CKPT_AUTH_NONCE_LEN],
                     const uint8_t server_nonce[CKPT_AUTH_NONCE_LEN]);

/** @return true when proof is right (constant-time comparison). */
bool ckpt_auth_proof_ok(const uint8_t proof[CKPT_AUTH_PROOF_LEN],
                        const uint8_t key[CKPT_AUTH_KEY_LEN], enum ckpt_auth_role role,
                        const uint8_t client_nonce[CKPT_AUTH_NONCE_LEN],
                        const uint8_t server_nonce[CKPT_AUTH_NONCE_LEN]);

#endif
