/* tokenizer_internal.h - what the tokenizer's files share (not a public API).
 *
 *   tokenizer.c               tokenizer.json loading, added tokens, the encode pipeline
 *   tokenizer_clean.c         Wan's prompt cleaning (ftfy subset, html.unescape, whitespace)
 *   tokenizer_norm.c          normalizers (Precompiled charsmap, Replace, Strip), graphemes,
 *                             pre-tokenizers (Metaspace, WhitespaceSplit)
 *   tokenizer_unigram.c       Unigram vocabulary and Viterbi
 *   tokenizer_utf8.c          UTF-8 and growable buffers, Unicode table lookups
 *   tokenizer_*_table.c       generated data (tools/reference/make_token_goldens.py --c-tables)
 */
#ifndef AU_TOKENIZER_INTERNAL_H
#define AU_TOKENIZER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- UTF-8 and buffers */

typedef struct tok_buf {
    char *p; /* NUL-terminated when non-NULL */
    size_t n;
    size_t cap;
} tok_buf;

int tok_buf_put(tok_buf *b, const void *s, size_t n);  /* 0 or AU_ENOMEM */
int tok_buf_putc(tok_buf *b, uint32_t cp);             /* UTF-8 encode */
void tok_buf_free(tok_buf *b);
/* Length in bytes of a valid UTF-8 string's first character at s (n > 0); *cp its value. */
int tok_utf8_next(const char *s, size_t n, uint32_t *cp);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates, or values past U+10FFFF). */
int tok_utf8_valid(const char *s, size_t n);

/* ---------------------------------------------------------------- generated tables */

typedef struct tok_range {
    uint32_t lo, hi; /* inclusive */
} tok_range;
typedef struct tok_cp_map {
    uint32_t cp;
    const char *to; /* UTF-8 */
} tok_cp_map;
enum { TOK_ENT_SEMI = 1, TOK_ENT_BARE = 2 };
typedef struct tok_html_entity {
    const char *name;  /* without '&' and ';' */
    const char *value; /* UTF-8 */
    const char *upper; /* ftfy's value for "&NAME;" in capitals, or NULL */
    int flags;         /* TOK_ENT_SEMI: "&name;" is a reference; TOK_ENT_BARE: "&name" too */
} tok_html_entity;

extern const tok_range tok_gcb_control[], tok_gcb_extend[], tok_gcb_spacing_mark[], tok_gcb_prepend[];
extern const int tok_gcb_control_count, tok_gcb_extend_count, tok_gcb_spacing_mark_count, tok_gcb_prepend_count;
extern const tok_range tok_py_space[], tok_white_space[], tok_decimal_digit[];
extern const int tok_py_space_count, tok_white_space_count, tok_decimal_digit_count;
extern const tok_cp_map tok_ftfy_width[], tok_ftfy_ligature[], tok_ftfy_c1[];
extern const int tok_ftfy_width_count, tok_ftfy_ligature_count, tok_ftfy_c1_count;
extern const tok_html_entity tok_html_entities[];
extern const int tok_html_entities_count;

int tok_in_ranges(uint32_t cp, const tok_range *r, int n);
const char *tok_map_lookup(uint32_t cp, const tok_cp_map *m, int n); /* NULL if absent */
const tok_html_entity *tok_entity_lookup(const char *name, size_t len);

/* ---------------------------------------------------------------- normalizers, pre-tokenizers */

typedef struct tok_normalizer tok_normalizer;   /* a normalizer chain */
typedef struct tok_pretokenizer tok_pretokenizer; /* a pre-tokenizer chain */

/* Parse tokenizer.json's "normalizer" / "pre_tokenizer" (JSON null = none). */
int tok_normalizer_parse(tok_normalizer **out, json_t *j, au_err *err);
void tok_normalizer_free(tok_normalizer *n);
/* Normalize s[0..n) into out (cleared first). */
int tok_normalize(const tok_normalizer *n, const char *s, size_t len, tok_buf *out, au_err *err);

int tok_pretokenizer_parse(tok_pretokenizer **out, json_t *j, au_err *err);
void tok_pretokenizer_free(tok_pretokenizer *p);
/* Split s[0..n) into pieces: fn(piece, len, ctx) for each non-empty piece, in order. */
typedef int (*tok_piece_fn)(const char *piece, size_t len, void *ctx, au_err *err);
int tok_pretokenize(const tok_pretokenizer *p, const char *s, size_t len, tok_piece_fn fn, void *ctx,
                    au_err *err);

/* ---------------------------------------------------------------- Unigram */

typedef struct tok_unigram tok_unigram;
typedef struct tok_ids {
    int32_t *v;
    int n;
    int cap;
} tok_ids;
int tok_ids_push(tok_ids *ids, int32_t id); /* 0 or AU_ENOMEM */

int tok_unigram_parse(tok_unigram **out, json_t *model, au_err *err);
void tok_unigram_free(tok_unigram *m);
int tok_unigram_size(const tok_unigram *m);
int tok_unigram_id(const tok_unigram *m, const char *piece, size_t len); /* -1 if absent */
/* Viterbi-segment one pre-tokenized piece, appending ids. */
int tok_unigram_encode(const tok_unigram *m, const char *s, size_t len, tok_ids *ids, au_err *err);

#endif
