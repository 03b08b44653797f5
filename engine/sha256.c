/* sha256.c - SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104).
 *
 * The hash runs over 64-byte blocks: bytes are buffered in s->block until a block is
 * full, then compressed into the eight 32-bit state words. Final pads with 0x80, zeros
 * and the message length in bits (big endian) so the total is a multiple of 64 bytes.
 * HMAC = H((K ^ opad) || H((K ^ ipad) || msg)) with K hashed first when longer than a block.
 */
#include "sha256.h"

#include <string.h>

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void sha256_compress(uint32_t state[8], const uint8_t block[64]) {
    uint32_t schedule[64];
    for (int t = 0; t < 16; t++) schedule[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t w15 = schedule[t - 15], w2 = schedule[t - 2];
        uint32_t sigma0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
        uint32_t sigma1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
        schedule[t] = schedule[t - 16] + sigma0 + schedule[t - 7] + sigma1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t big_sigma1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t choose = (e & f) ^ (~e & g);
        uint32_t temp1 = h + big_sigma1 + choose + round_constants[t] + schedule[t];
        uint32_t big_sigma0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t temp2 = big_sigma0 + majority;
        h = g;
        g = f;
        f = e;
        e = d + temp1;
        d = c;
        c = b;
        b = a;
        a = temp1 + temp2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void sha256_init(au_sha256 *s) {
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->state, initial, sizeof initial);
    s->total_bytes = 0;
    s->block_used = 0;
}

void sha256_update(au_sha256 *s, const void *data, size_t n) {
    const uint8_t *bytes = data;
    if (!n) return; /* data may be NULL then */
    s->total_bytes += n;
    if (s->block_used) {
        size_t take = 64 - s->block_used;
        if (take > n) take = n;
        memcpy(s->block + s->block_used, bytes, take);
        s->block_used += take;
        bytes += take;
        n -= take;
        if (s->block_used < 64) return;
        sha256_compress(s->state, s->block);
        s->block_used = 0;
    }
    for (; n >= 64; n -= 64, bytes += 64) sha256_compress(s->state, bytes);
    if (n) {
        memcpy(s->block, bytes, n);
        s->block_used = n;
    }
}

void sha256_final(au_sha256 *s, uint8_t digest[32]) {
    uint64_t total_bits = s->total_bytes * 8;
    s->block[s->block_used++] = 0x80;
    if (s->block_used > 56) {
        memset(s->block + s->block_used, 0, 64 - s->block_used);
        sha256_compress(s->state, s->block);
        s->block_used = 0;
    }
    memset(s->block + s->block_used, 0, 56 - s->block_used);
    store_be32(s->block + 56, (uint32_t)(total_bits >> 32));
    store_be32(s->block + 60, (uint32_t)total_bits);
    sha256_compress(s->state, s->block);
    for (int i = 0; i < 8; i++) store_be32(digest + 4 * i, s->state[i]);
    memset(s, 0, sizeof *s);
}

void sha256(const void *data, size_t n, uint8_t digest[32]) {
    au_sha256 s;
    sha256_init(&s);
    sha256_update(&s, data, n);
    sha256_final(&s, digest);
}

void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len, uint8_t mac[32]) {
    uint8_t block_key[64] = {0};
    if (key_len > 64)
        sha256(key, key_len, block_key);
    else if (key_len)
        memcpy(block_key, key, key_len);
    uint8_t pad[64], inner_digest[32];
    au_sha256 s;
    for (int i = 0; i < 64; i++) pad[i] = block_key[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, msg, msg_len);
    sha256_final(&s, inner_digest);
    for (int i = 0; i < 64; i++) pad[i] = block_key[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner_digest, 32);
    sha256_final(&s, mac);
    memset(block_key, 0, sizeof block_key);
    memset(pad, 0, sizeof pad);
}

void sha256_hex(const uint8_t digest[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}
