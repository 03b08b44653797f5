/* tokenizer.c - tokenizer.json loading and the encode pipeline (see tokenizer.h).
 *
 * Encode, as the `tokenizers` library does for one sequence with special tokens:
 *   1. the cleaned text is split at added tokens whose "normalized" is false (leftmost
 *      match, longest at equal start), each match becoming its id;
 *   2. each other part is normalized, then split again at normalized added tokens (their
 *      content normalized at load); parts that end up empty are dropped;
 *   3. each remaining part is pre-tokenized into pieces and every piece Viterbi-segmented;
 *   4. truncation keeps the first max_len - (post-processor tokens) ids, then the
 *      TemplateProcessing "single" template adds its special tokens around them ($A).
 * Added tokens with lstrip, rstrip or single_word set, post-processors other than
 * TemplateProcessing, and templates that use $B are refused at load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct added_token {
    char *content; /* for normalized tokens: the normalized content */
    size_t len;
    int32_t id;
    int normalized;
} added_token;

struct au_tokenizer {
    tok_normalizer *norm;
    tok_pretokenizer *pre;
    tok_unigram *model;
    added_token *added;
    int n_added;
    int32_t prefix[8], suffix[8]; /* post-processor ids before / after the sequence */
    int n_prefix, n_suffix;
    int pad_id, eos_id, vocab_size;
};

void tok_free(au_tokenizer *t) {
    if (!t)
        return;
    tok_normalizer_free(t->norm);
    tok_pretokenizer_free(t->pre);
    tok_unigram_free(t->model);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t);
}

/* Id of a token text: added tokens first (their ids win), then the model. -1 if absent. */
static int token_id(const au_tokenizer *t, const char *text) {
    for (int i = 0; i < t->n_added; i++) {
        if (!t->added[i].normalized && strcmp(t->added[i].content, text) == 0)
            return t->added[i].id;
    }
    return tok_unigram_id(t->model, text, strlen(text));
}

static int parse_added(au_tokenizer *t, json_t *list, au_err *err) {
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return au_errf(err, AU_EFORMAT, "added_tokens is not an array");
    size_t n = json_array_size(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return au_errf(err, AU_ENOMEM, "out of memory");
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) {
        json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > 0x7FFFFFFE ||
            !json_is_string(content) || json_string_length(content) == 0)
            return au_errf(err, AU_EFORMAT, "added_tokens[%zu]: needs a non-negative id and non-empty content", i);
        const char *text = json_string_value(content);
        if (json_is_true(json_object_get(a, "lstrip")) || json_is_true(json_object_get(a, "rstrip")) ||
            json_is_true(json_object_get(a, "single_word")))
            return au_errf(err, AU_EUNSUPPORTED, "added token %s: lstrip/rstrip/single_word are not implemented", text);
        added_token *at = &t->added[t->n_added];
        /* "normalized" defaults to true for non-special tokens, as in the library. */
        json_t *norm = json_object_get(a, "normalized");
        at->normalized = norm ? json_is_true(norm) : !json_is_true(json_object_get(a, "special"));
        at->id = (int32_t)json_integer_value(id);
        if (at->normalized) {
            tok_buf b = {0};
            int rc = tok_normalize(t->norm, text, json_string_length(content), &b, err);
            if (rc < 0) {
                tok_buf_free(&b);
                return au_err_prefix(err, "added token %s", text);
            }
            at->content = b.p;
            at->len = b.n;
        } else {
            at->len = json_string_length(content);
            at->content = malloc(at->len + 1);
            if (at->content) {
                memcpy(at->content, text, at->len);
                at->content[at->len] = '\0';
            }
        }
        if (!at->content)
            return au_errf(err, AU_ENOMEM, "out of memory");
        t->n_added++;
        if (at->id + 1 > t->vocab_size)
            t->vocab_size = at->id + 1;
    }
    return 0;
}

/* TemplateProcessing's "single" template: special tokens before and after "$A". */
static int parse_post(au_tokenizer *t, json_t *pp, au_err *err) {
    if (!pp || json_is_null(pp))
        return 0;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type || strcmp(type, "TemplateProcessing") != 0)
        return au_errf(err, AU_EUNSUPPORTED, "post_processor type %s is not implemented", type ? type : "(none)");
    json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens");
    if (!json_is_array(single))
        return au_errf(err, AU_EFORMAT, "TemplateProcessing: no \"single\" template");
    int seen_a = 0;
    size_t i;
    json_t *item;
    json_array_foreach(single, i, item) {
        json_t *seq = json_object_get(item, "Sequence"), *sp = json_object_get(item, "SpecialToken");
        if (seq) {
            const char *which = json_string_value(json_object_get(seq, "id"));
            if (seen_a || !which || strcmp(which, "A") != 0)
                return au_errf(err, AU_EUNSUPPORTED, "TemplateProcessing: single template must use $A once");
            seen_a = 1;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return au_errf(err, AU_EFORMAT, "TemplateProcessing: special token %s has no ids", name ? name : "?");
        size_t k;
        json_t *idv;
        json_array_foreach(ids, k, idv) {
            int *count = seen_a ? &t->n_suffix : &t->n_prefix;
            int32_t *dst = seen_a ? t->suffix : t->prefix;
            if (!json_is_integer(idv) || json_integer_value(idv) < 0 || json_integer_value(idv) > 0x7FFFFFFE ||
                *count >= 8)
                return au_errf(err, AU_EFORMAT, "TemplateProcessing: special token %s: bad ids", name);
            dst[(*count)++] = (int32_t)json_integer_value(idv);
        }
    }
    if (!seen_a)
        return au_errf(err, AU_EFORMAT, "TemplateProcessing: single template has no $A");
    return 0;
}

static int tok_from_json(au_tokenizer **out, json_t *root, au_err *err) {
    *out = NULL;
    if (!json_is_object(root))
        return au_errf(err, AU_EFORMAT, "tokenizer.json is not an object");
    au_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int rc;
    if ((rc = tok_normalizer_parse(&t->norm, json_object_get(root, "normalizer"), err)) < 0 ||
        (rc = tok_pretokenizer_parse(&t->pre, json_object_get(root, "pre_tokenizer"), err)) < 0 ||
        (rc = tok_unigram_parse(&t->model, json_object_get(root, "model"), err)) < 0)
        goto fail;
    t->vocab_size = tok_unigram_size(t->model);
    if ((rc = parse_added(t, json_object_get(root, "added_tokens"), err)) < 0 ||
        (rc = parse_post(t, json_object_get(root, "post_processor"), err)) < 0)
        goto fail;
    t->eos_id = token_id(t, "</s>");
    json_t *pad = json_object_get(json_object_get(root, "padding"), "pad_id");
    t->pad_id = json_is_integer(pad) ? (int)json_integer_value(pad) : token_id(t, "<pad>");
    if (t->pad_id < 0) {
        rc = au_errf(err, AU_EFORMAT, "tokenizer has no <pad> token and no padding.pad_id");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tok_free(t);
    return rc;
}

int tok_load_memory(au_tokenizer **out, const char *json_text, size_t n_bytes, au_err *err) {
    json_error_t jerr;
    json_t *root = json_loadb(json_text, n_bytes, 0, &jerr);
    if (!root)
        return au_errf(err, AU_EFORMAT, "tokenizer.json: %s (line %d)", jerr.text, jerr.line);
    int rc = tok_from_json(out, root, err);
    json_decref(root);
    return rc;
}

int tok_load(au_tokenizer **out, const char *path, au_err *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        FILE *f = fopen(path, "r");
        if (!f)
            return au_errf(err, AU_ENOTFOUND, "%s: cannot open", path);
        fclose(f);
        return au_errf(err, AU_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    }
    int rc = tok_from_json(out, root, err);
    json_decref(root);
    return rc < 0 ? au_err_prefix(err, "%s", path) : 0;
}

int tok_vocab_size(const au_tokenizer *t) { return t->vocab_size; }
int tok_pad_id(const au_tokenizer *t) { return t->pad_id; }
int tok_eos_id(const au_tokenizer *t) { return t->eos_id; }

/* ---------------------------------------------------------------- encode */

typedef struct encode_ctx {
    const au_tokenizer *t;
    tok_ids ids;
} encode_ctx;

static int encode_piece(const char *piece, size_t n, void *ctx, au_err *err) {
    encode_ctx *c = ctx;
    return tok_unigram_encode(c->t->model, piece, n, &c->ids, err);
}

/* The longest added token of the given kind matching at s (s has n bytes left); -1 if none. */
static int added_at(const au_tokenizer *t, const char *s, size_t n, int normalized) {
    int best = -1;
    for (int i = 0; i < t->n_added; i++) {
        const added_token *a = &t->added[i];
        if (a->normalized == normalized && a->len <= n && a->len > 0 && memcmp(s, a->content, a->len) == 0 &&
            (best < 0 || a->len > t->added[best].len))
            best = i;
    }
    return best;
}

/* Split s at added tokens of one kind; other parts go to fn(part) (non-empty only). */
static int split_added(encode_ctx *c, const char *s, size_t n, int normalized,
                       int (*fn)(encode_ctx *c, const char *part, size_t len, au_err *err), au_err *err) {
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        int a = added_at(c->t, s + i, n - i, normalized);
        if (a < 0) {
            i++;
            continue;
        }
        int rc = 0;
        if (i > start && (rc = fn(c, s + start, i - start, err)) < 0)
            return rc;
        if (tok_ids_push(&c->ids, c->t->added[a].id) < 0)
            return au_errf(err, AU_ENOMEM, "out of memory");
        i += c->t->added[a].len;
        start = i;
    }
    return n > start ? fn(c, s + start, n - start, err) : 0;
}

static int pretokenize_part(encode_ctx *c, const char *part, size_t len, au_err *err) {
    return tok_pretokenize(c->t->pre, part, len, encode_piece, c, err);
}

static int normalize_part(encode_ctx *c, const char *part, size_t len, au_err *err) {
    tok_buf b = {0};
    int rc = tok_normalize(c->t->norm, part, len, &b, err);
    if (rc == 0 && b.n > 0)
        rc = split_added(c, b.p, b.n, 1, pretokenize_part, err);
    tok_buf_free(&b);
    return rc;
}

int tok_encode(const au_tokenizer *t, const char *text, int32_t *ids, int max_len, int *n_tokens, au_err *err) {
    int n_special = t->n_prefix + t->n_suffix;
    if (max_len <= n_special)
        return au_errf(err, AU_EINVAL, "max_len %d leaves no room beside %d special tokens", max_len, n_special);
    char *clean = NULL;
    int rc = tok_clean(text, &clean, err);
    if (rc < 0)
        return rc;
    encode_ctx c = {t, {0}};
    rc = split_added(&c, clean, strlen(clean), 0, normalize_part, err);
    free(clean);
    if (rc < 0) {
        free(c.ids.v);
        return rc;
    }
    int keep = c.ids.n < max_len - n_special ? c.ids.n : max_len - n_special;
    int k = 0;
    for (int i = 0; i < t->n_prefix; i++)
        ids[k++] = t->prefix[i];
    for (int i = 0; i < keep; i++)
        ids[k++] = c.ids.v[i];
    for (int i = 0; i < t->n_suffix; i++)
        ids[k++] = t->suffix[i];
    *n_tokens = k;
    while (k < max_len)
        ids[k++] = t->pad_id;
    free(c.ids.v);
    return 0;
}
