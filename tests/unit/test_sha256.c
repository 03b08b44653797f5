// deps: au_core
/* test_sha256.c - SHA-256 and HMAC-SHA-256 against published vectors.
 *
 * SHA-256: the FIPS 180-4 examples (NIST CSRC) "abc", the 448-bit and 896-bit messages,
 * the empty message and one million 'a'. HMAC: the RFC 4231 test cases 1-7 (case 5
 * compares the first 128 bits, as the RFC does). Streaming: the same message fed in
 * every split and in one-byte pieces gives the one-shot digest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "check.h"

static void digest_hex(const void *data, size_t n, char hex[65]) {
    uint8_t digest[32];
    sha256(data, n, digest);
    sha256_hex(digest, hex);
}

static void test_fips_vectors(void) {
    static const struct {
        const char *msg, *want;
    } vectors[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
         "nopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char hex[65];
        digest_hex(vectors[i].msg, strlen(vectors[i].msg), hex);
        CHECK(strcmp(hex, vectors[i].want) == 0, "sha256(\"%s\") = %s, want %s", vectors[i].msg, hex,
              vectors[i].want);
    }
}

static void test_million_a(void) {
    size_t n = 1000000;
    char *msg = malloc(n);
    REQUIRE(msg, "out of memory");
    memset(msg, 'a', n);
    char hex[65];
    digest_hex(msg, n, hex);
    const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    CHECK(strcmp(hex, want) == 0, "one million 'a' (one shot) = %s, want %s", hex, want);
    /* The same in uneven pieces through the streaming interface. */
    au_sha256 s;
    sha256_init(&s);
    size_t done = 0, piece = 1;
    while (done < n) {
        size_t take = piece < n - done ? piece : n - done;
        sha256_update(&s, msg + done, take);
        done += take;
        piece = piece * 3 % 997 + 1;
    }
    uint8_t digest[32];
    sha256_final(&s, digest);
    sha256_hex(digest, hex);
    CHECK(strcmp(hex, want) == 0, "one million 'a' (streamed) = %s, want %s", hex, want);
    free(msg);
}

static void test_every_split(void) {
    /* 200 bytes cover the padding cases at 55, 56, 63, 64 and two-block remainders. */
    uint8_t msg[200];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t whole[32];
        sha256(msg, len, whole);
        for (size_t cut = 0; cut <= len; cut += (len > 70 ? 7 : 1)) {
            au_sha256 s;
            uint8_t split[32];
            sha256_init(&s);
            sha256_update(&s, msg, cut);
            sha256_update(&s, msg + cut, len - cut);
            sha256_final(&s, split);
            CHECK(memcmp(whole, split, 32) == 0, "length %zu split at %zu differs from one shot", len, cut);
        }
    }
}

static void test_hmac_rfc4231(void) {
    uint8_t key_0b[20], key_aa20[20], key_seq[25], key_0c[20], key_aa131[131], data_dd[50], data_cd[50];
    memset(key_0b, 0x0b, sizeof key_0b);
    memset(key_aa20, 0xaa, sizeof key_aa20);
    for (int i = 0; i < 25; i++) key_seq[i] = (uint8_t)(i + 1);
    memset(key_0c, 0x0c, sizeof key_0c);
    memset(key_aa131, 0xaa, sizeof key_aa131);
    memset(data_dd, 0xdd, sizeof data_dd);
    memset(data_cd, 0xcd, sizeof data_cd);
    static const char large_key_msg[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char large_both_msg[] =
        "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be "
        "hashed before being used by the HMAC algorithm.";
    const struct {
        const void *key;
        size_t key_len;
        const void *msg;
        size_t msg_len;
        const char *want; /* case 5: only the first 32 hex digits */
    } cases[] = {
        {key_0b, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", 4, "what do ya want for nothing?", 28,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {key_aa20, 20, data_dd, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {key_seq, 25, data_cd, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {key_0c, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b"},
        {key_aa131, 131, large_key_msg, sizeof large_key_msg - 1,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {key_aa131, 131, large_both_msg, sizeof large_both_msg - 1,
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t mac[32];
        char hex[65];
        hmac_sha256(cases[i].key, cases[i].key_len, cases[i].msg, cases[i].msg_len, mac);
        sha256_hex(mac, hex);
        size_t compare = strlen(cases[i].want);
        CHECK(strncmp(hex, cases[i].want, compare) == 0, "RFC 4231 case %zu: %s, want %s", i + 1, hex,
              cases[i].want);
    }
    /* An empty key and message are valid input too (value from the definition, checked with openssl). */
    uint8_t mac[32];
    char hex[65];
    hmac_sha256(NULL, 0, NULL, 0, mac);
    sha256_hex(mac, hex);
    CHECK(strcmp(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad") == 0,
          "hmac(empty, empty) = %s", hex);
}

int main(void) {
    test_fips_vectors();
    test_million_a();
    test_every_split();
    test_hmac_rfc4231();
    return check_exit_code();
}
