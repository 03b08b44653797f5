/* tokenizer_norm.c - the normalizer and pre-tokenizer stages of a tokenizer.json pipeline,
 * matching the Hugging Face `tokenizers` library.
 *
 * Normalizers (a chain, from "Sequence" or a single one):
 *  - Precompiled: SentencePiece's compiled normalisation rules. precompiled_charsmap is
 *    base64 of: u32 LE trie_size, trie_size/4 u32 LE units of a double-array trie over
 *    bytes, then a pool of NUL-terminated UTF-8 replacement strings. A unit holds
 *    label = unit & (0x80000000 | 0xFF), has_leaf = bit 8, offset = (unit >> 10) << (8 if
 *    bit 9 else 0), value = unit & 0x7FFFFFFF. Walking a key: node = offset(trie[0]); for
 *    each byte c: node ^= c, fail unless label(trie[node]) == c, node ^= offset(trie[node]);
 *    a key ends where has_leaf was set, its value being the pool offset in trie[node].
 *    The text is cut into extended grapheme clusters; a cluster shorter than 6 bytes is
 *    replaced as a whole by the replacement of the SHORTEST key that is a prefix of it (the
 *    rest of the cluster is dropped, as the library does); otherwise, or when no key is a
 *    prefix, each character is replaced by its own key's replacement or kept.
 *  - Replace: a literal ("String") pattern, or a "Regex" of the form `c{n,}` / `c+` for
 *    one character c (what SentencePiece conversions emit, " {2,}"); other regexes are
 *    refused at load.
 *  - Strip: leading/trailing Unicode White_Space.
 * Grapheme clusters follow UAX #29 for CR LF, Control, Extend/ZWJ, SpacingMark and Prepend.
 * The rules for Hangul syllables, regional-indicator pairs, emoji ZWJ sequences and Indic
 * conjuncts are not applied: they only join characters of 3 or more bytes into clusters
 * of 6 or more bytes, which are handled character by character anyway, so splitting them
 * gives the same output.
 *
 * Pre-tokenizers (a chain): Metaspace (every ' ' becomes the replacement, which is
 * prepended when absent with prepend_scheme "always"; with split the text is cut before
 * every replacement character) and WhitespaceSplit (cut at and drop White_Space).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

enum { MAX_STEPS = 16 };

typedef enum { NORM_PRECOMPILED, NORM_REPLACE, NORM_STRIP } norm_kind;

typedef struct norm_step {
    norm_kind kind;
    uint32_t *trie; /* Precompiled */
    size_t trie_n;
    char *pool;
    size_t pool_n;
    char *pattern; /* Replace: literal, or the repeated character of a regex */
    size_t pattern_n;
    int min_repeat; /* Replace: 0 for a literal, else the regex's minimum count */
    char *content;
    size_t content_n;
    int strip_left, strip_right; /* Strip */
} norm_step;

struct tok_normalizer {
    norm_step steps[MAX_STEPS];
    int n;
};

typedef enum { PRE_METASPACE, PRE_WHITESPACE_SPLIT } pre_kind;

typedef struct pre_step {
    pre_kind kind;
    char repl[5]; /* Metaspace replacement, UTF-8 */
    size_t repl_n;
    int prepend;
    int split;
} pre_step;

struct tok_pretokenizer {
    pre_step steps[MAX_STEPS];
    int n;
};

/* ---------------------------------------------------------------- base64 */

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard alphabet, padded; returns malloc'ed bytes or NULL if malformed. */
static uint8_t *b64_decode(const char *s, size_t n, size_t *out_n) {
    if (n % 4 != 0)
        return NULL;
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    uint8_t *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            int last_quad = i + 4 == n;
            v[j] = (last_quad && (size_t)j >= 4 - pad) ? 0 : b64_val(s[i + j]);
            if (v[j] < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[k++] = (uint8_t)(w >> 16);
        if (i + 4 < n || pad < 2)
            out[k++] = (uint8_t)(w >> 8);
        if (i + 4 < n || pad < 1)
            out[k++] = (uint8_t)w;
    }
    *out_n = k;
    return out;
}

/* ---------------------------------------------------------------- Precompiled */

static int parse_precompiled(norm_step *st, json_t *j, au_err *err) {
    const char *b64 = json_string_value(json_object_get(j, "precompiled_charsmap"));
    if (!b64)
        return au_errf(err, AU_EFORMAT, "Precompiled normalizer: precompiled_charsmap is not a string");
    size_t n;
    uint8_t *raw = b64_decode(b64, strlen(b64), &n);
    if (!raw)
        return au_errf(err, AU_EFORMAT, "Precompiled normalizer: precompiled_charsmap is not valid base64");
    int rc = 0;
    uint32_t trie_size = n >= 4 ? (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 |
                                      (uint32_t)raw[3] << 24
                                : 0;
    size_t units = trie_size / 4;
    if (n < 4 || units > (n - 4) / 4 || units == 0) {
        rc = au_errf(err, AU_EFORMAT, "Precompiled normalizer: charsmap of %zu bytes holds no %u-byte trie", n,
                     trie_size);
        goto done;
    }
    st->trie = malloc(units * sizeof *st->trie);
    st->pool_n = n - 4 - units * 4;
    st->pool = malloc(st->pool_n + 1);
    if (!st->trie || !st->pool) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < units; i++) {
        const uint8_t *u = raw + 4 + 4 * i;
        st->trie[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    st->trie_n = units;
    memcpy(st->pool, raw + 4 + units * 4, st->pool_n);
    st->pool[st->pool_n] = '\0';
    if (!tok_utf8_valid(st->pool, st->pool_n))
        rc = au_errf(err, AU_EFORMAT, "Precompiled normalizer: replacement strings are not valid UTF-8");
done:
    free(raw);
    return rc;
}

static size_t unit_offset(uint32_t u) { return (size_t)(u >> 10) << ((u & (1u << 9)) >> 6); }

/* Replacement of the shortest key that prefixes s[0..n): 1 (found; sets out and out_n), 0 (no
 * key), or AU_EFORMAT for a trie that points outside itself. */
static int charsmap_find(const norm_step *st, const char *s, size_t n, const char **out, size_t *out_n,
                         au_err *err) {
    size_t node = unit_offset(st->trie[0]);
    for (size_t i = 0; i < n && s[i]; i++) {
        uint8_t c = (uint8_t)s[i];
        node ^= c;
        if (node >= st->trie_n)
            return au_errf(err, AU_EFORMAT, "Precompiled normalizer: trie index %zu out of range", node);
        uint32_t u = st->trie[node];
        if ((u & (0x80000000u | 0xFFu)) != c)
            return 0;
        node ^= unit_offset(u);
        if ((u >> 8) & 1) {
            if (node >= st->trie_n)
                return au_errf(err, AU_EFORMAT, "Precompiled normalizer: trie index %zu out of range", node);
            size_t at = st->trie[node] & 0x7FFFFFFFu;
            if (at > st->pool_n || (at < st->pool_n && ((uint8_t)st->pool[at] & 0xC0) == 0x80))
                return au_errf(err, AU_EFORMAT, "Precompiled normalizer: replacement offset %zu is invalid", at);
            *out = st->pool + at;
            *out_n = strlen(st->pool + at); /* the pool is NUL-terminated past its end too */
            return 1;
        }
    }
    return 0;
}

enum { GCB_OTHER, GCB_CR, GCB_LF, GCB_CONTROL, GCB_EXTEND, GCB_SPACING_MARK, GCB_PREPEND };

static int gcb_class(uint32_t cp) {
    if (cp == '\r')
        return GCB_CR;
    if (cp == '\n')
        return GCB_LF;
    if (cp < 0x20 || cp == 0x7F)
        return GCB_CONTROL;
    if (cp < 0x80)
        return GCB_OTHER;
    if (tok_in_ranges(cp, tok_gcb_extend, tok_gcb_extend_count))
        return GCB_EXTEND;
    if (tok_in_ranges(cp, tok_gcb_control, tok_gcb_control_count))
        return GCB_CONTROL;
    if (tok_in_ranges(cp, tok_gcb_spacing_mark, tok_gcb_spacing_mark_count))
        return GCB_SPACING_MARK;
    if (tok_in_ranges(cp, tok_gcb_prepend, tok_gcb_prepend_count))
        return GCB_PREPEND;
    return GCB_OTHER;
}

static int gcb_joins(int prev, int cur) {
    if (prev == GCB_CR && cur == GCB_LF)
        return 1;
    if (prev == GCB_CR || prev == GCB_LF || prev == GCB_CONTROL || cur == GCB_CR || cur == GCB_LF ||
        cur == GCB_CONTROL)
        return 0;
    return cur == GCB_EXTEND || cur == GCB_SPACING_MARK || prev == GCB_PREPEND;
}

static int precompiled_apply(const norm_step *st, const char *s, size_t n, tok_buf *out, au_err *err) {
    int rc = 0;
    for (size_t g = 0; g < n && rc == 0;) {
        /* The grapheme cluster [g, end). */
        uint32_t cp;
        size_t end = g + (size_t)tok_utf8_next(s + g, n - g, &cp);
        int prev = gcb_class(cp);
        while (end < n) {
            int l = tok_utf8_next(s + end, n - end, &cp);
            int cur = gcb_class(cp);
            if (!gcb_joins(prev, cur))
                break;
            end += (size_t)l;
            prev = cur;
        }
        const char *rep;
        size_t rep_n;
        int found = 0;
        if (end - g < 6 && (found = charsmap_find(st, s + g, end - g, &rep, &rep_n, err)) < 0)
            return found;
        if (found) {
            rc = tok_buf_put(out, rep, rep_n);
        } else {
            for (size_t c = g; c < end && rc == 0;) {
                int l = tok_utf8_next(s + c, end - c, &cp);
                if ((found = charsmap_find(st, s + c, (size_t)l, &rep, &rep_n, err)) < 0)
                    return found;
                rc = found ? tok_buf_put(out, rep, rep_n) : tok_buf_put(out, s + c, (size_t)l);
                c += (size_t)l;
            }
        }
        g = end;
    }
    return rc < 0 ? au_errf(err, AU_ENOMEM, "out of memory") : 0;
}

/* ---------------------------------------------------------------- Replace, Strip */

static int parse_replace(norm_step *st, json_t *j, au_err *err) {
    json_t *pat = json_object_get(j, "pattern");
    const char *content = json_string_value(json_object_get(j, "content"));
    const char *lit = json_string_value(json_object_get(pat, "String"));
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    if (!content || (!lit && !re))
        return au_errf(err, AU_EFORMAT, "Replace normalizer: needs pattern.String or pattern.Regex and content");
    if (lit) {
        if (!lit[0])
            return au_errf(err, AU_EUNSUPPORTED, "Replace normalizer: empty pattern");
        st->pattern_n = strlen(lit);
        st->pattern = strdup(lit);
    } else {
        /* One character (a backslash-escaped ASCII punctuation character, or any character
         * that is not a regex metacharacter), then "+" or "{n,}". */
        const char *c = re, *q;
        size_t clen;
        if (re[0] == '\\' && re[1] && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", re[1])) {
            c = re + 1;
            clen = 1;
        } else if (re[0] && !strchr(".^$|?*+()[]{}\\", re[0])) {
            uint32_t cp;
            clen = (size_t)tok_utf8_next(re, strlen(re), &cp);
        } else {
            clen = 0;
        }
        q = c + clen;
        long min = 0;
        if (clen && strcmp(q, "+") == 0) {
            min = 1;
        } else if (clen && q[0] == '{' && q[1] >= '0' && q[1] <= '9') {
            char *end;
            min = strtol(q + 1, &end, 10);
            if (strcmp(end, ",}") != 0 || min < 1 || min > 1000)
                min = 0;
        }
        if (!min)
            return au_errf(err, AU_EUNSUPPORTED, "Replace normalizer: regex \"%s\" (only c{n,} and c+ are supported)",
                           re);
        st->pattern_n = clen;
        st->pattern = strndup(c, clen);
        st->min_repeat = (int)min;
    }
    st->content_n = strlen(content);
    st->content = strdup(content);
    return st->pattern && st->content ? 0 : au_errf(err, AU_ENOMEM, "out of memory");
}

static int replace_apply(const norm_step *st, const char *s, size_t n, tok_buf *out) {
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t run = 0;
        while (i + (run + 1) * st->pattern_n <= n &&
               memcmp(s + i + run * st->pattern_n, st->pattern, st->pattern_n) == 0) {
            run++;
            if (st->min_repeat == 0)
                break; /* a literal matches once at a time */
        }
        if (run > 0 && (int)run >= (st->min_repeat ? st->min_repeat : 1)) {
            rc = tok_buf_put(out, st->content, st->content_n);
            i += run * st->pattern_n;
        } else {
            uint32_t cp;
            int l = tok_utf8_next(s + i, n - i, &cp);
            rc = tok_buf_put(out, s + i, (size_t)l);
            i += (size_t)l;
        }
    }
    return rc;
}

static int is_white_space(uint32_t cp) { return tok_in_ranges(cp, tok_white_space, tok_white_space_count); }

static int strip_apply(const norm_step *st, const char *s, size_t n, tok_buf *out) {
    size_t b = 0, e = n;
    uint32_t cp;
    while (st->strip_left && b < e) {
        int l = tok_utf8_next(s + b, e - b, &cp);
        if (!is_white_space(cp))
            break;
        b += (size_t)l;
    }
    while (st->strip_right && e > b) {
        size_t k = e - 1;
        while (k > b && ((uint8_t)s[k] & 0xC0) == 0x80)
            k--;
        tok_utf8_next(s + k, e - k, &cp);
        if (!is_white_space(cp))
            break;
        e = k;
    }
    return tok_buf_put(out, s + b, e - b);
}

/* ---------------------------------------------------------------- normalizer chain */

static int add_normalizer(tok_normalizer *nz, json_t *j, int depth, au_err *err) {
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return au_errf(err, AU_EFORMAT, "normalizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list) || depth > 4)
            return au_errf(err, AU_EFORMAT, "Sequence normalizer: bad \"normalizers\"");
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            int rc = add_normalizer(nz, item, depth + 1, err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (nz->n >= MAX_STEPS)
        return au_errf(err, AU_EUNSUPPORTED, "more than %d normalizers", MAX_STEPS);
    norm_step *st = &nz->steps[nz->n++];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "Precompiled") == 0) {
        st->kind = NORM_PRECOMPILED;
        return parse_precompiled(st, j, err);
    }
    if (strcmp(type, "Replace") == 0) {
        st->kind = NORM_REPLACE;
        return parse_replace(st, j, err);
    }
    if (strcmp(type, "Strip") == 0) {
        st->kind = NORM_STRIP;
        st->strip_left = json_is_true(json_object_get(j, "strip_left"));
        st->strip_right = json_is_true(json_object_get(j, "strip_right"));
        return 0;
    }
    nz->n--;
    return au_errf(err, AU_EUNSUPPORTED, "normalizer type %s is not implemented", type);
}

int tok_normalizer_parse(tok_normalizer **out, json_t *j, au_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc = json_is_null(j) || !j ? 0 : add_normalizer(*out, j, 0, err);
    if (rc < 0) {
        tok_normalizer_free(*out);
        *out = NULL;
    }
    return rc;
}

void tok_normalizer_free(tok_normalizer *nz) {
    if (!nz)
        return;
    for (int i = 0; i < nz->n; i++) {
        free(nz->steps[i].trie);
        free(nz->steps[i].pool);
        free(nz->steps[i].pattern);
        free(nz->steps[i].content);
    }
    free(nz);
}

int tok_normalize(const tok_normalizer *nz, const char *s, size_t n, tok_buf *out, au_err *err) {
    tok_buf cur = {0}, next = {0};
    int rc = tok_buf_put(&cur, s, n);
    for (int i = 0; i < nz->n && rc == 0; i++) {
        const norm_step *st = &nz->steps[i];
        next.n = 0;
        if ((rc = tok_buf_put(&next, "", 0)) < 0)
            break;
        if (st->kind == NORM_PRECOMPILED)
            rc = precompiled_apply(st, cur.p, cur.n, &next, err);
        else if (st->kind == NORM_REPLACE)
            rc = replace_apply(st, cur.p, cur.n, &next);
        else
            rc = strip_apply(st, cur.p, cur.n, &next);
        tok_buf swap = cur;
        cur = next, next = swap;
    }
    out->n = 0;
    if (rc == 0)
        rc = tok_buf_put(out, cur.p, cur.n);
    tok_buf_free(&cur);
    tok_buf_free(&next);
    if (rc == AU_ENOMEM)
        return au_errf(err, AU_ENOMEM, "out of memory normalizing");
    return rc;
}

/* ---------------------------------------------------------------- pre-tokenizers */

static int add_pretokenizer(tok_pretokenizer *pt, json_t *j, int depth, au_err *err) {
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        return au_errf(err, AU_EFORMAT, "pre-tokenizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list) || depth > 4)
            return au_errf(err, AU_EFORMAT, "Sequence pre-tokenizer: bad \"pretokenizers\"");
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            int rc = add_pretokenizer(pt, item, depth + 1, err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (pt->n >= MAX_STEPS)
        return au_errf(err, AU_EUNSUPPORTED, "more than %d pre-tokenizers", MAX_STEPS);
    pre_step *st = &pt->steps[pt->n];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "WhitespaceSplit") == 0) {
        st->kind = PRE_WHITESPACE_SPLIT;
        pt->n++;
        return 0;
    }
    if (strcmp(type, "Metaspace") != 0)
        return au_errf(err, AU_EUNSUPPORTED, "pre-tokenizer type %s is not implemented", type);
    st->kind = PRE_METASPACE;
    const char *repl = json_string_value(json_object_get(j, "replacement"));
    uint32_t cp;
    if (!repl || !repl[0] || !tok_utf8_valid(repl, strlen(repl)) ||
        (size_t)tok_utf8_next(repl, strlen(repl), &cp) != strlen(repl))
        return au_errf(err, AU_EFORMAT, "Metaspace: replacement must be one character");
    st->repl_n = strlen(repl);
    memcpy(st->repl, repl, st->repl_n);
    /* prepend_scheme (default "always"); the legacy add_prefix_space=false means "never". */
    const char *scheme = json_string_value(json_object_get(j, "prepend_scheme"));
    json_t *legacy = json_object_get(j, "add_prefix_space");
    if (json_is_false(legacy) && scheme && strcmp(scheme, "never") != 0)
        return au_errf(err, AU_EFORMAT, "Metaspace: add_prefix_space does not match prepend_scheme");
    if (json_is_false(legacy) || (scheme && strcmp(scheme, "never") == 0))
        st->prepend = 0;
    else if (!scheme || strcmp(scheme, "always") == 0)
        st->prepend = 1;
    else
        return au_errf(err, AU_EUNSUPPORTED, "Metaspace: prepend_scheme \"%s\" is not implemented", scheme);
    json_t *split = json_object_get(j, "split");
    st->split = !json_is_false(split);
    pt->n++;
    return 0;
}

int tok_pretokenizer_parse(tok_pretokenizer **out, json_t *j, au_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc = json_is_null(j) || !j ? 0 : add_pretokenizer(*out, j, 0, err);
    if (rc < 0) {
        tok_pretokenizer_free(*out);
        *out = NULL;
    }
    return rc;
}

void tok_pretokenizer_free(tok_pretokenizer *pt) { free(pt); }

static int pretok_step(const tok_pretokenizer *pt, int k, const char *s, size_t n, tok_piece_fn fn, void *ctx,
                       au_err *err);

/* Hand s[0..n) to the next step if it is not empty. */
static int pretok_emit(const tok_pretokenizer *pt, int k, const char *s, size_t n, tok_piece_fn fn, void *ctx,
                       au_err *err) {
    if (n == 0)
        return 0;
    return k == pt->n ? fn(s, n, ctx, err) : pretok_step(pt, k, s, n, fn, ctx, err);
}

static int metaspace(const tok_pretokenizer *pt, int k, const char *s, size_t n, tok_piece_fn fn, void *ctx,
                     au_err *err) {
    const pre_step *st = &pt->steps[k];
    tok_buf b = {0};
    int rc = tok_buf_put(&b, "", 0);
    if (rc == 0 && st->prepend && !(n >= 1 && s[0] == ' ') && !(n >= st->repl_n && !memcmp(s, st->repl, st->repl_n)))
        rc = tok_buf_put(&b, st->repl, st->repl_n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s[i] == ' ' ? tok_buf_put(&b, st->repl, st->repl_n) : tok_buf_put(&b, s + i, 1);
    if (rc < 0) {
        tok_buf_free(&b);
        return au_errf(err, AU_ENOMEM, "out of memory");
    }
    if (!st->split) {
        rc = pretok_emit(pt, k + 1, b.p, b.n, fn, ctx, err);
    } else {
        size_t start = 0;
        for (size_t i = 1; i <= b.n && rc == 0; i++) {
            if (i == b.n || (b.n - i >= st->repl_n && memcmp(b.p + i, st->repl, st->repl_n) == 0)) {
                rc = pretok_emit(pt, k + 1, b.p + start, i - start, fn, ctx, err);
                start = i;
            }
        }
    }
    tok_buf_free(&b);
    return rc;
}

static int whitespace_split(const tok_pretokenizer *pt, int k, const char *s, size_t n, tok_piece_fn fn,
                            void *ctx, au_err *err) {
    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        if (is_white_space(cp)) {
            rc = pretok_emit(pt, k + 1, s + start, i - start, fn, ctx, err);
            start = i + (size_t)l;
        }
        i += (size_t)l;
    }
    return rc ? rc : pretok_emit(pt, k + 1, s + start, n - start, fn, ctx, err);
}

static int pretok_step(const tok_pretokenizer *pt, int k, const char *s, size_t n, tok_piece_fn fn, void *ctx,
                       au_err *err) {
    if (pt->steps[k].kind == PRE_METASPACE)
        return metaspace(pt, k, s, n, fn, ctx, err);
    return whitespace_split(pt, k, s, n, fn, ctx, err);
}

int tok_pretokenize(const tok_pretokenizer *pt, const char *s, size_t n, tok_piece_fn fn, void *ctx, au_err *err) {
    return pretok_emit(pt, 0, s, n, fn, ctx, err);
}
