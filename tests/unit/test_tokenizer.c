// deps: au_tokenizer au_core
/* test_tokenizer.c - engine/tokenizer*.c against the Hugging Face `tokenizers` library.
 *
 * Every tests/golden/tokens/<name>.json (written by tools/reference/make_token_goldens.py)
 * names a tokenizer.json (xz-compressed beside it) and lists prompts with Wan's cleaned
 * text and the library's ids; each prompt must give exactly those ids, that mask length
 * and <pad> after them. Where a case depends on the two ftfy steps not implemented in C
 * (NFC, mojibake repair) it carries a "subset" reference computed without them, which is
 * then asserted instead, and the test reports how many cases that concerns.
 * Also: truncation keeps EOS last, argument and format errors, load errors.
 */
#include <jansson.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

#define MAX_LEN 512

static int g_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whole file, decompressed with `xz -dc` when it ends in .xz; NULL on failure. */
static char *read_tokenizer_file(const char *path, size_t *n_out) {
    size_t len = strlen(path);
    FILE *f;
    int is_xz = len > 3 && strcmp(path + len - 3, ".xz") == 0;
    if (is_xz) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "xz -dc '%s'", path);
        f = popen(cmd, "r");
    } else {
        f = fopen(path, "rb");
    }
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    int status = is_xz ? pclose(f) : fclose(f);
    if (!buf || status != 0) {
        free(buf);
        return NULL;
    }
    *n_out = n;
    return buf;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* One golden case; returns 1 if it used the "subset" reference. */
static int check_case(const au_tokenizer *tok, const char *file, size_t index, json_t *c, int pad_id, int eos_id,
                      double *encode_s) {
    const char *prompt = json_string_value(json_object_get(c, "prompt"));
    json_t *ref = json_object_get(c, "subset") ? json_object_get(c, "subset") : c;
    const char *want_clean = json_string_value(json_object_get(ref, "cleaned"));
    json_t *want_ids = json_object_get(ref, "ids");
    int want_n = (int)json_integer_value(json_object_get(ref, "n_tokens"));
    au_err err = {0};
    char *clean = NULL;
    if (tok_clean(prompt, &clean, &err) < 0 || strcmp(clean, want_clean) != 0) {
        fprintf(stderr, "%s case %zu: cleaned text differs\n    prompt: %s\n    want:   %s\n    got:    %s\n", file,
                index, prompt, want_clean, clean ? clean : err.msg);
        g_failures++;
    }
    free(clean);
    int32_t ids[MAX_LEN];
    int n = -1;
    double t0 = now_s();
    int rc = tok_encode(tok, prompt, ids, MAX_LEN, &n, &err);
    *encode_s += now_s() - t0;
    int ok = rc == 0 && n == want_n && (int)json_array_size(want_ids) == n;
    for (int i = 0; ok && i < n; i++)
        ok = ids[i] == json_integer_value(json_array_get(want_ids, (size_t)i));
    for (int i = n; ok && i < MAX_LEN; i++)
        ok = ids[i] == pad_id;
    ok = ok && ids[n - 1] == eos_id;
    if (!ok) {
        fprintf(stderr, "%s case %zu: ids differ (rc %d %s)\n    prompt: %.200s\n", file, index, rc, err.msg, prompt);
        int32_t want[MAX_LEN];
        for (int i = 0; i < want_n && i < MAX_LEN; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(want_ids, (size_t)i));
        print_ids("want", want, want_n);
        print_ids("got ", ids, n);
        g_failures++;
    }
    return ref != c;
}

/* Truncation to a small max_len keeps the first ids and EOS last. */
static void check_truncation(const au_tokenizer *tok, json_t *c, int eos_id) {
    json_t *ref = json_object_get(c, "subset") ? json_object_get(c, "subset") : c;
    json_t *want = json_object_get(ref, "ids");
    const char *prompt = json_string_value(json_object_get(c, "prompt"));
    for (int max_len = 2; max_len <= 9; max_len++) {
        if ((int)json_array_size(want) <= max_len)
            continue;
        int32_t ids[16];
        int n = -1;
        au_err err = {0};
        CHECK(tok_encode(tok, prompt, ids, max_len, &n, &err) == 0 && n == max_len);
        for (int i = 0; i + 1 < max_len; i++)
            CHECK(ids[i] == json_integer_value(json_array_get(want, (size_t)i)));
        CHECK(ids[max_len - 1] == eos_id);
    }
}

static void run_golden(const char *dir, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    json_error_t jerr;
    json_t *g = json_load_file(path, 0, &jerr);
    if (!g) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        g_failures++;
        return;
    }
    char tok_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/%s", dir, json_string_value(json_object_get(g, "tokenizer")));
    size_t n_json = 0;
    char *text = read_tokenizer_file(tok_path, &n_json);
    au_tokenizer *tok = NULL;
    au_err err = {0};
    double t0 = now_s();
    int rc = text ? tok_load_memory(&tok, text, n_json, &err) : AU_EIO;
    double load_s = now_s() - t0;
    free(text);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot load %s: %s\n", file, tok_path, text ? err.msg : "unreadable");
        g_failures++;
        json_decref(g);
        return;
    }
    int pad_id = (int)json_integer_value(json_object_get(g, "pad_id"));
    int eos_id = (int)json_integer_value(json_object_get(g, "eos_id"));
    CHECK(tok_pad_id(tok) == pad_id);
    CHECK(tok_eos_id(tok) == eos_id);
    CHECK(tok_vocab_size(tok) == json_integer_value(json_object_get(g, "vocab_size")));
    json_t *cases = json_object_get(g, "cases");
    size_t i;
    json_t *c;
    int subset = 0, failures_before = g_failures;
    double encode_s = 0;
    json_array_foreach(cases, i, c) {
        subset += check_case(tok, file, i, c, pad_id, eos_id, &encode_s);
        check_truncation(tok, c, eos_id);
    }
    printf("%s: %zu prompts, %s; %d compared with the NFC/mojibake-free reference; load %.1f ms, encode %.3f ms "
           "per prompt\n",
           file, json_array_size(cases), g_failures == failures_before ? "all ids identical" : "MISMATCHES", subset,
           1e3 * load_s, 1e3 * encode_s / (double)(json_array_size(cases) ? json_array_size(cases) : 1));
    /* Argument errors. */
    int32_t ids[MAX_LEN];
    int n;
    CHECK(tok_encode(tok, "bad \xff utf-8", ids, MAX_LEN, &n, &err) == AU_EINVAL && strstr(err.msg, "UTF-8"));
    CHECK(tok_encode(tok, "overlong \xc0\xaf", ids, MAX_LEN, &n, &err) == AU_EINVAL);
    CHECK(tok_encode(tok, "surrogate \xed\xa0\x80", ids, MAX_LEN, &n, &err) == AU_EINVAL);
    CHECK(tok_encode(tok, "x", ids, 1, &n, &err) == AU_EINVAL && strstr(err.msg, "max_len"));
    tok_free(tok);
    json_decref(g);
}

static void expect_load_error(const char *json, int want_rc, const char *want_msg, int line) {
    au_tokenizer *tok = NULL;
    au_err err = {0};
    int rc = tok_load_memory(&tok, json, strlen(json), &err);
    if (rc != want_rc || !strstr(err.msg, want_msg) || tok) {
        fprintf(stderr, "%s:%d: load rc %d \"%s\", expected %d with \"%s\"\n", __FILE__, line, rc, err.msg, want_rc,
                want_msg);
        g_failures++;
    }
    tok_free(tok);
}
#define LOAD_ERROR(json, rc, msg) expect_load_error(json, rc, msg, __LINE__)

static void test_load_errors(void) {
    const char *model = "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0],[\"<pad>\",0],"
                        "[\"\\u2581a\",-1.5],[\"a\",-2]]}";
    char buf[1024];
    /* A minimal valid one first, and what it does. */
    snprintf(buf, sizeof buf, "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":"
                              "\"\\u2581\",\"prepend_scheme\":\"always\",\"split\":true},%s}",
             model);
    au_tokenizer *tok = NULL;
    au_err err = {0};
    CHECK(tok_load_memory(&tok, buf, strlen(buf), &err) == 0);
    if (tok) {
        int32_t ids[8];
        int n = 0;
        CHECK(tok_encode(tok, "a aa b", ids, 8, &n, &err) == 0);
        /* pieces "▁a" "▁aa" "▁b" -> 2 | 2 3 | 0: "▁" and "b" are unknown and fused into one;
         * no post-processor, so no EOS; then <pad> (1) */
        CHECK(n == 4 && ids[0] == 2 && ids[1] == 2 && ids[2] == 3 && ids[3] == 0 && ids[4] == 1);
        CHECK(tok_eos_id(tok) == -1 && tok_pad_id(tok) == 1 && tok_vocab_size(tok) == 4);
        tok_free(tok);
    }
    LOAD_ERROR("{", AU_EFORMAT, "tokenizer.json");
    LOAD_ERROR("[]", AU_EFORMAT, "not an object");
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"NFKC\"},%s}", model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "normalizer type NFKC");
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"a|b\"},\"content\":\"\"},%s}",
             model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "regex \"a|b\"");
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"@@@@\"},%s}", model);
    LOAD_ERROR(buf, AU_EFORMAT, "base64");
    snprintf(buf, sizeof buf, "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"AAAAAA==\"},%s}",
             model);
    LOAD_ERROR(buf, AU_EFORMAT, "trie");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},%s}", model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "pre-tokenizer type ByteLevel");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\","
                              "\"prepend_scheme\":\"first\"},%s}",
             model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "prepend_scheme \"first\"");
    LOAD_ERROR("{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", AU_EUNSUPPORTED, "model type BPE");
    LOAD_ERROR("{\"model\":{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"<pad>\",0]]}}", AU_EFORMAT, "unk_id 5");
    LOAD_ERROR("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"<pad>\"]]}}", AU_EFORMAT, "vocab[0]");
    LOAD_ERROR("{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0]]}}", AU_EFORMAT, "<pad>");
    snprintf(buf, sizeof buf, "{\"added_tokens\":[{\"id\":9,\"content\":\"x\",\"lstrip\":true}],%s}", model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "added token x");
    snprintf(buf, sizeof buf, "{\"post_processor\":{\"type\":\"BertProcessing\"},%s}", model);
    LOAD_ERROR(buf, AU_EUNSUPPORTED, "post_processor type BertProcessing");
    snprintf(buf, sizeof buf, "{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                              "{\"id\":\"</s>\",\"type_id\":0}}],\"special_tokens\":{}},%s}",
             model);
    LOAD_ERROR(buf, AU_EFORMAT, "special token </s>");
    /* A vocabulary without unk cannot encode an unknown character. */
    const char *no_unk = "{\"model\":{\"type\":\"Unigram\",\"unk_id\":null,\"vocab\":[[\"<pad>\",0],[\"a\",-1]]}}";
    CHECK(tok_load_memory(&tok, no_unk, strlen(no_unk), &err) == 0);
    if (tok) {
        int32_t ids[8];
        int n;
        CHECK(tok_encode(tok, "aa", ids, 8, &n, &err) == 0 && n == 2 && ids[0] == 1 && ids[1] == 1);
        CHECK(tok_encode(tok, "ab", ids, 8, &n, &err) == AU_EFORMAT && strstr(err.msg, "U+0062"));
        tok_free(tok);
    }
    CHECK(tok_load(&tok, "/nonexistent/tokenizer.json", &err) == AU_ENOTFOUND && tok == NULL);
}

int main(void) {
    const char *src = getenv("AUTEUR_SOURCE_DIR");
    char dir[4000];
    snprintf(dir, sizeof dir, "%s/tests/golden/tokens", src && src[0] ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open\n", dir);
        return 1;
    }
    int n_goldens = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 && !strstr(e->d_name, ".tokenizer.")) {
            run_golden(dir, e->d_name);
            n_goldens++;
        }
    }
    closedir(d);
    CHECK(n_goldens >= 2);
    test_load_errors();
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_tokenizer: all checks passed\n");
    return 0;
}
