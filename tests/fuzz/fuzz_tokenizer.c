// deps: au_tokenizer au_core
/* fuzz_tokenizer.c - fuzz target for the tokenizer (cleaning, normalizers, Viterbi, loading).
 *
 * The first input byte picks what the rest is:
 *   0 (mod 3): a prompt, encoded with the committed test tokenizer
 *              (tests/golden/tokens/unigram-small.tokenizer.json.xz, found relative to this
 *              file's __FILE__ or named by $AUTEUR_FUZZ_TOKENIZER, decompressed once with
 *              `xz -dc`) at max_len 2 + byte1 % 511;
 *              the ids must be in range, EOS last, then padding;
 *   1:         a whole tokenizer.json; when it loads, a few fixed prompts are encoded;
 *   2:         a raw SentencePiece precompiled_charsmap, wrapped (base64) into a small
 *              tokenizer.json, so hostile double-array tries reach the trie walk.
 * Rejections must come with a message.
 *
 * With gcc this builds against replay_main.c and ctest replays tests/fuzz/corpus/fuzz_tokenizer.
 * libFuzzer (clang), from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz/fuzz_tokenizer.c \
 *     engine/tokenizer*.c engine/status.c -ljansson -lm -o /tmp/fuzz_tokenizer
 *   mkdir -p /tmp/tok_corpus && /tmp/fuzz_tokenizer -max_total_time=300 -max_len=4096 \
 *     /tmp/tok_corpus tests/fuzz/corpus/fuzz_tokenizer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_tokenizer: %s (%s)\n", what, detail ? detail : "");
    abort();
}

/* The test tokenizer, loaded on first use. */
static au_tokenizer *test_tokenizer(void) {
    static au_tokenizer *tok;
    if (tok)
        return tok;
    char cmd[4096];
    const char *env = getenv("AUTEUR_FUZZ_TOKENIZER");
    const char *slash = strrchr(__FILE__, '/');
    int dir_len = slash ? (int)(slash - __FILE__) : 1;
    if (env && env[0])
        snprintf(cmd, sizeof cmd, "xz -dc '%s'", env);
    else
        snprintf(cmd, sizeof cmd, "xz -dc '%.*s/../golden/tokens/unigram-small.tokenizer.json.xz'", dir_len,
                 slash ? __FILE__ : ".");
    FILE *f = popen(cmd, "r");
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap);
    for (size_t got; f && text && (got = fread(text + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap)
            text = realloc(text, cap *= 2);
    }
    if (!f || pclose(f) != 0 || !text)
        fail("cannot read the test tokenizer", cmd);
    au_err err = {0};
    if (tok_load_memory(&tok, text, n, &err) < 0)
        fail("cannot load the test tokenizer", err.msg);
    free(text);
    return tok;
}

static void check_encode(const au_tokenizer *tok, const char *prompt, int max_len) {
    int32_t ids[512];
    int n = -1;
    au_err err = {0};
    if (tok_encode(tok, prompt, ids, max_len, &n, &err) < 0) {
        if (!err.msg[0])
            fail("encode failed without a message", prompt);
        return;
    }
    if (n < 0 || n > max_len)
        fail("n_tokens out of range", prompt);
    for (int i = 0; i < max_len; i++) {
        if (ids[i] < 0 || ids[i] >= tok_vocab_size(tok))
            fail("id out of range", prompt);
        if (i >= n && ids[i] != tok_pad_id(tok))
            fail("padding is not the pad id", prompt);
    }
}

static void fuzz_prompt(const uint8_t *data, size_t size) {
    if (size < 1)
        return;
    const au_tokenizer *tok = test_tokenizer();
    int max_len = 2 + data[0] % 511;
    char *prompt = malloc(size);
    memcpy(prompt, data + 1, size - 1);
    prompt[size - 1] = '\0'; /* a NUL inside the input just ends the prompt early */
    check_encode(tok, prompt, max_len);
    int32_t ids[512];
    int n = 0;
    au_err err = {0};
    if (tok_encode(tok, prompt, ids, max_len, &n, &err) == 0 && ids[n - 1] != tok_eos_id(tok))
        fail("EOS is not last", prompt);
    char *clean = NULL;
    if (tok_clean(prompt, &clean, &err) == 0) {
        size_t len = strlen(clean);
        if (len && (clean[0] == ' ' || clean[len - 1] == ' ' || strstr(clean, "  ")))
            fail("cleaned text keeps surrounding or repeated spaces", clean);
    }
    free(clean);
    free(prompt);
}

static void try_tokenizer(const char *json, size_t n) {
    au_tokenizer *tok = NULL;
    au_err err = {0};
    if (tok_load_memory(&tok, json, n, &err) < 0) {
        if (tok || !err.msg[0])
            fail("load rejected without a message or with a tokenizer", err.msg);
        return;
    }
    static const char *const prompts[] = {"", "a", "hello world", "  x  y  ", "caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x98\x80",
                                          "e\xcc\x81\xcc\xa3 \xef\xbc\xa1\xcc\x81 &amp;amp; </s> <pad>"};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        check_encode(tok, prompts[i], 64);
        check_encode(tok, prompts[i], 2);
    }
    tok_free(tok);
}

static void fuzz_charsmap(const uint8_t *data, size_t size) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char head[] = "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"";
    static const char tail[] = "\"},\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\"},"
                               "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0],[\"<pad>\",0],"
                               "[\"\\u2581\",-1],[\"a\",-2],[\"e\",-2],[\"\\u2581a\",-1.5]]}}";
    size_t cap = sizeof head + sizeof tail + 4 * (size / 3 + 1) + 1;
    char *json = malloc(cap), *p = json;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t w = (uint32_t)data[i] << 16 | (i + 1 < size ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < size ? data[i + 2] : 0);
        *p++ = b64[w >> 18];
        *p++ = b64[(w >> 12) & 63];
        *p++ = i + 1 < size ? b64[(w >> 6) & 63] : '=';
        *p++ = i + 2 < size ? b64[w & 63] : '=';
    }
    memcpy(p, tail, sizeof tail - 1);
    p += sizeof tail - 1;
    try_tokenizer(json, (size_t)(p - json));
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: fuzz_prompt(data + 1, size - 1); break;
    case 1: try_tokenizer((const char *)data + 1, size - 1); break;
    default: fuzz_charsmap(data + 1, size - 1); break;
    }
    return 0;
}
