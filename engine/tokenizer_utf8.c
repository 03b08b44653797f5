/* tokenizer_utf8.c - UTF-8 decoding and validation, growable byte buffers, and lookups in
 * the generated tables (code point ranges, code point maps, HTML entity names).
 *
 * Valid UTF-8 here is what Rust's str and Python's str accept: shortest form only, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

int tok_buf_put(tok_buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return AU_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int tok_buf_putc(tok_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tok_buf_put(b, u, n);
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* Decode one character; returns its length, or 0 if s does not start with valid UTF-8. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

int tok_utf8_next(const char *s, size_t n, uint32_t *cp) {
    int len = utf8_decode((const unsigned char *)s, n, cp);
    if (len == 0) { /* callers only pass validated text; stay in bounds regardless */
        *cp = 0xFFFD;
        return 1;
    }
    return len;
}

int tok_utf8_valid(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (len == 0)
            return 0;
        i += (size_t)len;
    }
    return 1;
}

int tok_in_ranges(uint32_t cp, const tok_range *r, int n) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

const char *tok_map_lookup(uint32_t cp, const tok_cp_map *m, int n) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cp < m[mid].cp)
            hi = mid;
        else if (cp > m[mid].cp)
            lo = mid + 1;
        else
            return m[mid].to;
    }
    return NULL;
}

const tok_html_entity *tok_entity_lookup(const char *name, size_t len) {
    int lo = 0, hi = tok_html_entities_count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const char *e = tok_html_entities[mid].name;
        int c = strncmp(e, name, len);
        if (c == 0)
            c = e[len] != '\0'; /* e is longer: e > name */
        if (c == 0)
            return &tok_html_entities[mid];
        if (c > 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
