/* sha256.h - SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104).
 *
 * Used where two processes must agree that they hold the same thing without sending it:
 * the model fingerprint the ranks compare when they join, and the cluster token, proven
 * by an HMAC of a fresh challenge rather than sent in clear.
 */
#ifndef AU_SHA256_H
#define AU_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct au_sha256 {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    size_t block_used;
} au_sha256;

void sha256_init(au_sha256 *s);
void sha256_update(au_sha256 *s, const void *data, size_t n);
void sha256_final(au_sha256 *s, uint8_t digest[32]);
void sha256(const void *data, size_t n, uint8_t digest[32]);
void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len, uint8_t mac[32]);
/* 64 lowercase hex characters and a NUL. */
void sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
