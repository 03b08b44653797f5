/* tokenizer_unigram.c - the Unigram model of tokenizer.json: vocabulary and Viterbi.
 *
 * Vocabulary: [piece, log-probability] pairs; id = index. A piece listed twice resolves
 * to its last id (the library's piece->id map is filled in order). The pieces are kept
 * sorted bytewise, so the pieces that are prefixes of the text at a position are found
 * by narrowing a range one byte at a time (the role of the library's trie), shortest
 * first.
 *
 * Segmentation is the library's optimized Viterbi over byte positions: best[0] = 0; for
 * every character start p, every piece s[p..p+L) offers best[p] + score at p+L, taken
 * when the end has no path yet or the offer is strictly greater (so on ties the earlier
 * offer stays); when no piece covers exactly the character at p, the unknown piece offers
 * best[p] + (min_score - 10) at the character's end. Backtracking from the end gives the
 * pieces; runs of consecutive unknown pieces are fused into one, which takes the id of
 * the fused text if that is a piece, else unk_id. Scores are doubles, as in the library.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define UNK_PENALTY 10.0

struct tok_unigram {
    int n;           /* vocabulary size */
    char *blob;      /* all pieces, each NUL-terminated */
    size_t *off;     /* piece i at blob + off[i] */
    uint32_t *len;   /* its length in bytes */
    double *score;
    int32_t *sorted; /* one id per distinct piece, sorted by piece bytes */
    int n_sorted;
    int unk_id;      /* -1: none */
    double min_score;
};

int tok_ids_push(tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        int cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, (size_t)cap * sizeof *v);
        if (!v)
            return AU_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

typedef struct sort_item {
    const char *p;
    uint32_t len;
    int32_t id;
} sort_item;

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb) {
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c)
        return c;
    return na < nb ? -1 : na > nb;
}

static int cmp_item(const void *x, const void *y) {
    const sort_item *a = x, *b = y;
    int c = cmp_bytes(a->p, a->len, b->p, b->len);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

void tok_unigram_free(tok_unigram *m) {
    if (!m)
        return;
    free(m->blob);
    free(m->off);
    free(m->len);
    free(m->score);
    free(m->sorted);
    free(m);
}

static int build_sorted(tok_unigram *m, au_err *err) {
    sort_item *items = malloc((size_t)(m->n ? m->n : 1) * sizeof *items);
    m->sorted = malloc((size_t)(m->n ? m->n : 1) * sizeof *m->sorted);
    if (!items || !m->sorted) {
        free(items);
        return au_errf(err, AU_ENOMEM, "out of memory for a %d-piece vocabulary", m->n);
    }
    for (int i = 0; i < m->n; i++)
        items[i] = (sort_item){m->blob + m->off[i], m->len[i], i};
    qsort(items, (size_t)m->n, sizeof *items, cmp_item);
    int k = 0;
    for (int i = 0; i < m->n; i++) {
        int last_of_group = i + 1 == m->n || cmp_bytes(items[i].p, items[i].len, items[i + 1].p, items[i + 1].len);
        if (last_of_group)
            m->sorted[k++] = items[i].id;
    }
    m->n_sorted = k;
    free(items);
    return 0;
}

int tok_unigram_parse(tok_unigram **out, json_t *model, au_err *err) {
    *out = NULL;
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type || strcmp(type, "Unigram") != 0)
        return au_errf(err, AU_EUNSUPPORTED, "model type %s is not implemented (only Unigram)", type ? type : "(none)");
    if (json_is_true(json_object_get(model, "byte_fallback")))
        return au_errf(err, AU_EUNSUPPORTED, "Unigram model: byte_fallback is not implemented");
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_array(vocab))
        return au_errf(err, AU_EFORMAT, "Unigram model: vocab is not an array");
    size_t n = json_array_size(vocab);
    if (n > 0x7FFFFFFF / 2)
        return au_errf(err, AU_EFORMAT, "Unigram model: vocab too large");
    tok_unigram *m = calloc(1, sizeof *m);
    if (!m)
        return au_errf(err, AU_ENOMEM, "out of memory");
    m->n = (int)n;
    m->off = malloc((n ? n : 1) * sizeof *m->off);
    m->len = malloc((n ? n : 1) * sizeof *m->len);
    m->score = malloc((n ? n : 1) * sizeof *m->score);
    int rc = 0;
    if (!m->off || !m->len || !m->score) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto fail;
    }
    size_t total = 0;
    m->min_score = HUGE_VAL;
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(vocab, i);
        json_t *piece = json_array_get(pair, 0), *score = json_array_get(pair, 1);
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_string(piece) || !json_is_number(score)) {
            rc = au_errf(err, AU_EFORMAT, "Unigram model: vocab[%zu] is not [piece, score]", i);
            goto fail;
        }
        m->off[i] = total;
        m->len[i] = (uint32_t)json_string_length(piece);
        m->score[i] = json_number_value(score);
        if (m->score[i] < m->min_score)
            m->min_score = m->score[i];
        total += m->len[i] + 1;
    }
    m->blob = malloc(total ? total : 1);
    if (!m->blob) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *piece = json_array_get(json_array_get(vocab, i), 0);
        memcpy(m->blob + m->off[i], json_string_value(piece), m->len[i]);
        m->blob[m->off[i] + m->len[i]] = '\0';
    }
    json_t *unk = json_object_get(model, "unk_id");
    m->unk_id = -1;
    if (json_is_integer(unk)) {
        if (json_integer_value(unk) < 0 || json_integer_value(unk) >= (json_int_t)n) {
            rc = au_errf(err, AU_EFORMAT, "Unigram model: unk_id %lld is outside the %zu-piece vocabulary",
                         (long long)json_integer_value(unk), n);
            goto fail;
        }
        m->unk_id = (int)json_integer_value(unk);
    } else if (unk && !json_is_null(unk)) {
        rc = au_errf(err, AU_EFORMAT, "Unigram model: unk_id is not an integer");
        goto fail;
    }
    if ((rc = build_sorted(m, err)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    tok_unigram_free(m);
    return rc;
}

int tok_unigram_size(const tok_unigram *m) { return m->n; }

static const char *piece_of(const tok_unigram *m, int32_t id) { return m->blob + m->off[id]; }

int tok_unigram_id(const tok_unigram *m, const char *piece, size_t len) {
    int lo = 0, hi = m->n_sorted;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int32_t id = m->sorted[mid];
        int c = cmp_bytes(piece_of(m, id), m->len[id], piece, len);
        if (c == 0)
            return id;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Within sorted[lo..hi), whose pieces all start with the same depth-byte prefix, the
 * first entry whose byte at depth is >= c (strict: > c); shorter pieces sort first. */
static int bound(const tok_unigram *m, int lo, int hi, size_t depth, uint8_t c, int strict) {
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int32_t id = m->sorted[mid];
        int key = m->len[id] > depth ? (uint8_t)piece_of(m, id)[depth] : -1;
        if (strict ? key <= c : key < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct node {
    double score;
    int start; /* -1: not reached */
    int32_t id;
} node;

static void offer(node *nodes, size_t end, size_t start, double score, int32_t id) {
    node *t = &nodes[end];
    if (t->start < 0 || score > t->score) {
        t->score = score;
        t->start = (int)start;
        t->id = id;
    }
}

int tok_unigram_encode(const tok_unigram *m, const char *s, size_t n, tok_ids *ids, au_err *err) {
    if (n == 0)
        return 0;
    if (n > 0x3FFFFFFF)
        return au_errf(err, AU_EINVAL, "piece of %zu bytes is too long", n);
    node *nodes = malloc((n + 1) * sizeof *nodes);
    if (!nodes)
        return au_errf(err, AU_ENOMEM, "out of memory for a %zu-byte piece", n);
    for (size_t i = 0; i <= n; i++)
        nodes[i] = (node){0.0, -1, 0};
    const double unk_score = m->min_score - UNK_PENALTY;
    int rc = 0;
    for (size_t p = 0; p < n;) {
        uint32_t cp;
        size_t char_len = (size_t)tok_utf8_next(s + p, n - p, &cp);
        double here = nodes[p].score;
        int single = 0;
        int lo = 0, hi = m->n_sorted;
        for (size_t depth = 0; p + depth < n; depth++) {
            uint8_t c = (uint8_t)s[p + depth];
            lo = bound(m, lo, hi, depth, c, 0);
            hi = bound(m, lo, hi, depth, c, 1);
            if (lo >= hi)
                break;
            int32_t id = m->sorted[lo];
            if (m->len[id] == depth + 1) { /* s[p..p+depth] is a piece */
                offer(nodes, p + depth + 1, p, here + m->score[id], id);
                single |= depth + 1 == char_len;
            }
        }
        if (!single) {
            node *t = &nodes[p + char_len];
            if (t->start < 0 || unk_score + here > t->score) {
                if (m->unk_id < 0) {
                    rc = au_errf(err, AU_EFORMAT, "character U+%04X is not in the vocabulary and there is no unk_id",
                                 (unsigned)cp);
                    goto done;
                }
                offer(nodes, p + char_len, p, unk_score + here, m->unk_id);
            }
        }
        p += char_len;
    }
    /* Backtrack, then emit in order with runs of unknowns fused. */
    int n_nodes = 0;
    for (size_t e = n; e > 0; e = (size_t)nodes[e].start)
        n_nodes++;
    int32_t *path = malloc((size_t)n_nodes * sizeof *path); /* end positions, reversed */
    if (!path) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    int k = n_nodes;
    for (size_t e = n; e > 0; e = (size_t)nodes[e].start)
        path[--k] = (int32_t)e;
    for (int i = 0; i < n_nodes && rc == 0;) {
        size_t end = (size_t)path[i];
        if (nodes[end].id != m->unk_id) {
            rc = tok_ids_push(ids, nodes[end].id);
            i++;
            continue;
        }
        size_t begin = (size_t)nodes[end].start;
        while (i + 1 < n_nodes && nodes[path[i + 1]].id == m->unk_id)
            end = (size_t)path[++i];
        i++;
        int id = tok_unigram_id(m, s + begin, end - begin);
        rc = tok_ids_push(ids, id >= 0 ? id : m->unk_id);
    }
    free(path);
    if (rc == AU_ENOMEM)
        rc = au_errf(err, AU_ENOMEM, "out of memory");
done:
    free(nodes);
    return rc;
}
