/* tokenizer_clean.c - Wan2.1's prompt cleaning before tokenization (tok_clean).
 *
 * Wan (wan/modules/tokenizers.py, clean='whitespace') computes
 *     t = ftfy.fix_text(text); t = html.unescape(html.unescape(t)).strip()
 *     t = regex.sub(r'\s+', ' ', t).strip()
 * This file reproduces each step on UTF-8:
 *
 * ftfy.fix_text (ftfy 6.3, default configuration). The text is cut after every '\n' (and
 * every 10^6 code points); each segment is fixed on its own by repeating, until nothing
 * changes: unescape_html, [fix_encoding], fix_c1_controls, fix_latin_ligatures,
 * fix_character_width, uncurl_quotes, fix_line_breaks, [fix_surrogates],
 * remove_terminal_escapes, remove_control_chars, [NFC]. unescape_html is ftfy's own: only
 * "&name;" for HTML5 names (plus all-caps aliases such as "&EACUTE;") and "&#...;" that
 * html.unescape decodes completely; it is turned off for the segment that first contains
 * '<' and for every segment after it (ftfy keeps that setting for the rest of the text).
 * Not implemented, so different from ftfy only on such input:
 *   - fix_encoding, the mojibake repair ("cafÃ©" -> "café"): it acts only on text that
 *     ftfy's badness heuristic flags, never on text written correctly in UTF-8;
 *   - the final NFC normalisation: identity on text already in NFC, which is what
 *     keyboards and input methods produce. Decomposed accents are still composed
 *     afterwards by the tokenizer's NFKC charsmap for the common one-mark cases;
 *   - fix_surrogates has nothing to do: valid UTF-8 cannot hold surrogates.
 *
 * html.unescape (Python 3.11): "&#digits;?", "&#x hex;?", and "&name;?" with up to 32
 * characters, decoded per the HTML5 rules: numeric references 0x80-0x9F as Windows-1252,
 * 0 / surrogates / beyond U+10FFFF as U+FFFD, the noncharacters and most C0/C1 controls
 * removed; an unknown name falls back to its longest prefix that is a legacy
 * (semicolon-free) entity such as "&notit" -> "¬it".
 *
 * strip() removes Python str.isspace characters; regex \s is Unicode White_Space.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define FTFY_MAX_SEGMENT 1000000 /* code points; ftfy's max_decode_length */

/* ---------------------------------------------------------------- numeric references */

/* Value of a numeric character reference as html.unescape gives it, appended to out. */
static int put_charref(tok_buf *out, uint32_t num) {
    if (num == 0)
        return tok_buf_putc(out, 0xFFFD);
    if (num == 0x0D)
        return tok_buf_putc(out, '\r');
    if (num >= 0x80 && num <= 0x9F) /* Windows-1252, same table as ftfy's C1 fix */
        return tok_buf_put(out, tok_ftfy_c1[num - 0x80].to, strlen(tok_ftfy_c1[num - 0x80].to));
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        return tok_buf_putc(out, 0xFFFD);
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0; /* removed */
    return tok_buf_putc(out, num);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_alnum(char c) { return is_hex(c) || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z'); }
static int hex_val(char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

/* Parse digits of a numeric reference at s (after "&#"): *len consumed digits (and 'x'),
 * *num saturated above U+10FFFF; 0 if none. */
static int parse_charref(const char *s, size_t n, size_t *len, uint32_t *num) {
    size_t i = 0;
    int hex = 0;
    if (n > 0 && (s[0] == 'x' || s[0] == 'X')) {
        hex = 1;
        i = 1;
    }
    size_t start = i;
    uint32_t v = 0;
    while (i < n && (hex ? is_hex(s[i]) : is_digit(s[i]))) {
        if (v <= 0x110000)
            v = v * (hex ? 16 : 10) + (uint32_t)(hex ? hex_val(s[i]) : s[i] - '0');
        i++;
    }
    if (i == start)
        return 0;
    *len = i;
    *num = v > 0x110000 ? 0x110000 : v;
    return 1;
}

/* ---------------------------------------------------------------- html.unescape */

static int is_name_stop(uint32_t cp) {
    return cp == '\t' || cp == '\n' || cp == '\f' || cp == ' ' || cp == '<' || cp == '&' || cp == '#' || cp == ';';
}

/* One reference at s (s[0] == '&'): appends its expansion and returns the bytes consumed,
 * or 0 when nothing matches here. */
static int unescape_one(const char *s, size_t n, tok_buf *out, size_t *used) {
    *used = 0;
    if (n >= 2 && s[1] == '#') {
        size_t len;
        uint32_t num;
        if (!parse_charref(s + 2, n - 2, &len, &num))
            return 0;
        size_t end = 2 + len;
        if (end < n && s[end] == ';')
            end++;
        *used = end;
        return put_charref(out, num);
    }
    /* Named: up to 32 characters, then an optional ';'. */
    size_t i = 1, chars = 0, ends[33];
    while (i < n && chars < 32) {
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        if (is_name_stop(cp))
            break;
        i += (size_t)l;
        ends[++chars] = i;
    }
    if (chars == 0)
        return 0;
    int semi = i < n && s[i] == ';';
    const tok_html_entity *e = tok_entity_lookup(s + 1, i - 1);
    if (e && (e->flags & (semi ? TOK_ENT_SEMI : TOK_ENT_BARE))) {
        *used = i + (size_t)semi;
        return tok_buf_put(out, e->value, strlen(e->value));
    }
    /* Longest proper prefix (at least 2 characters) that is a semicolon-free entity. The
     * full name is itself a candidate when a ';' follows it. */
    size_t total = chars + (size_t)semi;
    for (size_t x = total - 1; x >= 2; x--) {
        size_t bytes = ends[x] - 1;
        e = tok_entity_lookup(s + 1, bytes);
        if (e && (e->flags & TOK_ENT_BARE)) {
            *used = 1 + bytes;
            return tok_buf_put(out, e->value, strlen(e->value));
        }
    }
    return 0;
}

static int html_unescape(const char *s, size_t n, tok_buf *out) {
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    for (size_t i = 0; i < n && rc == 0;) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t stop = amp ? (size_t)(amp - s) : n;
        rc = tok_buf_put(out, s + i, stop - i);
        i = stop;
        if (i < n && rc == 0) {
            size_t used;
            rc = unescape_one(s + i, n - i, out, &used);
            if (rc == 0 && used == 0)
                rc = tok_buf_put(out, "&", 1), used = 1;
            i += used;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- ftfy fixers */

/* Every fixer reports which parts of its output it rewrote, or derived from a rewritten
 * part of its input, so that later rounds of the fix-until-stable loop can be limited to
 * those parts (see ftfy_segment). */
typedef struct spans {
    size_t (*v)[2]; /* sorted, disjoint closed ranges [lo, hi]; lo == hi marks a deletion */
    int n, cap;
    int oom;
} spans;

/* Append a range at or after the last one, merging when they meet. */
static void spans_add(spans *s, size_t lo, size_t hi) {
    if (s->n && lo <= s->v[s->n - 1][1]) {
        if (hi > s->v[s->n - 1][1])
            s->v[s->n - 1][1] = hi;
        return;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        size_t(*v)[2] = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            s->oom = 1;
            return;
        }
        s->v = v, s->cap = cap;
    }
    s->v[s->n][0] = lo, s->v[s->n][1] = hi;
    s->n++;
}

/* Carries a fixer's input ranges to its output while it walks the text in order. */
typedef struct track {
    const spans *in;
    int k;
    spans *out;
} track;

/* One step of a fixer: input [i, i2) became output [o, o2). */
static void track_step(track *t, size_t i, size_t i2, size_t o, size_t o2, int rewritten) {
    while (t->k < t->in->n && t->in->v[t->k][1] < i)
        t->k++;
    if (rewritten || (t->k < t->in->n && t->in->v[t->k][0] <= i2))
        spans_add(t->out, o, o2);
}

/* After the last step: ranges at the very end of the input (deletions there). */
static void track_end(track *t, size_t n, size_t out_n) {
    while (t->k < t->in->n && t->in->v[t->k][1] < n)
        t->k++;
    if (t->k < t->in->n)
        spans_add(t->out, out_n, out_n);
}

typedef int (*fixer_fn)(const char *s, size_t n, tok_buf *out, track *t);

/* ftfy.unescape_html: "&#?[0-9A-Za-z]{1,24};" references it can decode unambiguously.
 * Rewrites the references starting in s[from..to) (reading past `to` as a match needs)
 * into out; *end is where the rewritten part ends in s (>= to). *changed gets the
 * rewritten output ranges. A match is at most 27 bytes. */
static int ftfy_unescape(const char *s, size_t n, size_t from, size_t to, tok_buf *out, size_t *end_out,
                         spans *changed) {
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    size_t i = from;
    while (i < to && rc == 0) {
        if (s[i] != '&') {
            rc = tok_buf_put(out, s + i, 1);
            i++;
            continue;
        }
        size_t j = i + 1;
        int hash = j < n && s[j] == '#';
        j += (size_t)hash;
        size_t run = 0;
        while (j + run < n && run <= 24 && is_alnum(s[j + run]))
            run++;
        if (run < 1 || run > 24 || j + run >= n || s[j + run] != ';') {
            rc = tok_buf_put(out, "&", 1);
            i++;
            continue;
        }
        const char *name = s + j;
        size_t end = j + run + 1, o = out->n; /* end: past ';' */
        const char *value = NULL;
        if (!hash) {
            const tok_html_entity *e = tok_entity_lookup(name, run);
            if (e && (e->flags & TOK_ENT_SEMI)) {
                value = e->value;
            } else {
                /* All-caps alias of a lower-case name, e.g. "&EACUTE;" -> "É". */
                char lower[25];
                int caps = 1;
                for (size_t k = 0; k < run; k++) {
                    caps &= !(name[k] >= 'a' && name[k] <= 'z');
                    lower[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] | 0x20 : name[k]);
                }
                e = caps ? tok_entity_lookup(lower, run) : NULL;
                value = e ? e->upper : NULL;
            }
            if (value)
                rc = tok_buf_put(out, value, strlen(value));
        } else {
            /* Kept only if html.unescape consumes it whole, ';' included, and does not
             * produce a ';' itself. */
            size_t len;
            uint32_t num;
            if (parse_charref(name, run, &len, &num) && len == run && num != ';') {
                rc = put_charref(out, num);
                value = "";
            }
        }
        if (value)
            spans_add(changed, o, out->n);
        else
            rc = tok_buf_put(out, s + i, end - i);
        i = end;
    }
    *end_out = i;
    return rc;
}

/* A per-character map: each character maps to a string (or is kept when fn gives NULL). */
static int map_chars(const char *s, size_t n, tok_buf *out, track *t, const char *(*fn)(uint32_t cp)) {
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t cp;
        size_t l = (size_t)tok_utf8_next(s + i, n - i, &cp), o = out->n;
        const char *to = fn(cp);
        int rewritten = to && !(strlen(to) == l && memcmp(to, s + i, l) == 0);
        rc = rewritten ? tok_buf_put(out, to, strlen(to)) : tok_buf_put(out, s + i, l);
        track_step(t, i, i + l, o, out->n, rewritten);
        i += l;
    }
    track_end(t, n, out->n);
    return rc;
}

static const char *c1_of(uint32_t cp) {
    return cp >= 0x80 && cp <= 0x9F ? tok_ftfy_c1[cp - 0x80].to : NULL;
}
static const char *ligature_of(uint32_t cp) { return tok_map_lookup(cp, tok_ftfy_ligature, tok_ftfy_ligature_count); }
static const char *width_of(uint32_t cp) { return tok_map_lookup(cp, tok_ftfy_width, tok_ftfy_width_count); }
static const char *uncurl_of(uint32_t cp) {
    if (cp == 0x02BC || (cp >= 0x2018 && cp <= 0x201B))
        return "'";
    return cp >= 0x201C && cp <= 0x201F ? "\"" : NULL;
}
static const char *control_of(uint32_t cp) {
    int drop = cp <= 0x08 || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
               (cp >= 0x206A && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFC);
    return drop ? "" : NULL;
}
static const char *line_break_of(uint32_t cp) {
    return cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85 ? "\n" : NULL;
}

static int fix_c1(const char *s, size_t n, tok_buf *out, track *t) {
    return map_chars(s, n, out, t, c1_of);
}
static int fix_ligatures(const char *s, size_t n, tok_buf *out, track *t) {
    return map_chars(s, n, out, t, ligature_of);
}
static int fix_width(const char *s, size_t n, tok_buf *out, track *t) {
    return map_chars(s, n, out, t, width_of);
}
static int fix_quotes(const char *s, size_t n, tok_buf *out, track *t) {
    return map_chars(s, n, out, t, uncurl_of);
}
static int fix_controls(const char *s, size_t n, tok_buf *out, track *t) {
    return map_chars(s, n, out, t, control_of);
}

/* "\r\n" -> "\n" first, then each lone "\r", U+2028, U+2029, U+0085 -> "\n". */
static int fix_line_breaks(const char *s, size_t n, tok_buf *out, track *t) {
    if (memchr(s, '\r', n) == NULL)
        return map_chars(s, n, out, t, line_break_of);
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    for (size_t i = 0; i < n && rc == 0;) {
        size_t o = out->n;
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
            rc = tok_buf_put(out, "\n", 1);
            track_step(t, i, i + 2, o, out->n, 1);
            i += 2;
            continue;
        }
        uint32_t cp;
        size_t l = (size_t)tok_utf8_next(s + i, n - i, &cp);
        const char *to = line_break_of(cp);
        rc = to ? tok_buf_put(out, to, 1) : tok_buf_put(out, s + i, l);
        track_step(t, i, i + l, o, out->n, to != NULL);
        i += l;
    }
    track_end(t, n, out->n);
    return rc;
}

/* ESC '[' (decimal digit | ';')* ASCII-letter is removed (Python \d: any Unicode Nd). */
static int remove_terminal_escapes(const char *s, size_t n, tok_buf *out, track *t) {
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    for (size_t i = 0; i < n && rc == 0;) {
        if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
            size_t j = i + 2;
            while (j < n) {
                uint32_t cp;
                int l = tok_utf8_next(s + j, n - j, &cp);
                if (cp != ';' && !tok_in_ranges(cp, tok_decimal_digit, tok_decimal_digit_count))
                    break;
                j += (size_t)l;
            }
            if (j < n && ((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z')) {
                track_step(t, i, j + 1, out->n, out->n, 1);
                i = j + 1;
                continue;
            }
        }
        size_t o = out->n;
        rc = tok_buf_put(out, s + i, 1);
        track_step(t, i, i + 1, o, out->n, 0);
        i++;
    }
    track_end(t, n, out->n);
    return rc;
}

/* ftfy's fixers after unescape_html, in ftfy's order, on cur; *dirty (ranges of cur) is
 * carried through and grown by what they rewrite. */
static int ftfy_other_fixes(tok_buf *cur, tok_buf *tmp, spans *dirty) {
    static const fixer_fn fixers[] = {fix_c1,          fix_ligatures,           fix_width,   fix_quotes,
                                      fix_line_breaks, remove_terminal_escapes, fix_controls};
    int rc = 0;
    for (size_t k = 0; k < sizeof fixers / sizeof fixers[0] && rc == 0; k++) {
        spans next = {0};
        track t = {dirty, 0, &next};
        rc = fixers[k](cur->p, cur->n, tmp, &t);
        rc = rc ? rc : next.oom ? AU_ENOMEM : 0;
        free(dirty->v);
        *dirty = next;
        if (rc == 0) {
            tok_buf swap = *cur;
            *cur = *tmp, *tmp = swap;
        }
    }
    return rc;
}

static size_t char_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* One later round over the window cur[lo..hi): appends its result to next and the
 * ranges it rewrote (in next's coordinates) to dirty, unless the window came out as it
 * went in; *end is where the window really ended in cur. */
static int ftfy_window(const tok_buf *cur, size_t lo, size_t hi, tok_buf *next, spans *dirty, size_t *end,
                       tok_buf *win, tok_buf *tmp) {
    spans d = {0};
    int rc = ftfy_unescape(cur->p, cur->n, lo, hi, win, end, &d);
    /* A decoded '\r' right before a '\n' of the text is one line break for
     * fix_line_breaks: take that '\n' into the window. */
    if (rc == 0 && win->n && win->p[win->n - 1] == '\r' && *end < cur->n && cur->p[*end] == '\n') {
        rc = tok_buf_put(win, "\n", 1);
        spans_add(&d, win->n - 1, win->n);
        (*end)++;
    }
    if (rc == 0)
        rc = ftfy_other_fixes(win, tmp, &d);
    size_t base = next->n;
    if (rc == 0)
        rc = tok_buf_put(next, win->p, win->n);
    int same = win->n == *end - lo && memcmp(win->p, cur->p + lo, win->n) == 0;
    for (int i = 0; rc == 0 && !same && i < d.n; i++)
        spans_add(dirty, base + d.v[i][0], base + d.v[i][1]);
    rc = rc ? rc : (d.oom || dirty->oom) ? AU_ENOMEM : 0;
    free(d.v);
    return rc;
}

/* One ftfy segment, fixed until stable; appended to out.
 *
 * ftfy repeats all its fixers over the segment until nothing changes. Here the first
 * round runs every fixer over the whole segment, tracking the ranges each one rewrote.
 * After that round the text holds no ESC (remove_control_chars dropped them and no
 * reference decodes to one), every character is stable under the other fixers (their
 * outputs are their own fixed points), and a reference not touching a rewritten range
 * was already looked at, with the same bytes, in the round before and did not match.
 * So a later round can only change the rewritten ranges and the FTFY_LOOKBACK bytes
 * before each (the longest reference is 27 bytes): each later round redoes just those
 * windows and splices them in, which gives the same text as a full round. A nested
 * "&amp;amp;...;" of k levels then costs k rounds over a small window each instead of k
 * passes over the whole prompt. */
#define FTFY_LOOKBACK 64
#define FTFY_MERGE_GAP 32 /* windows closer than this (> the longest reference) are merged */
static int ftfy_segment(const char *s, size_t n, int unescape, tok_buf *out) {
    tok_buf cur = {0}, next = {0}, tmp = {0}, win = {0};
    size_t end;
    spans dirty = {0};
    int rc = unescape ? ftfy_unescape(s, n, 0, n, &cur, &end, &dirty) : tok_buf_put(&cur, s, n);
    if (rc == 0 && dirty.oom)
        rc = AU_ENOMEM;
    if (rc == 0)
        rc = ftfy_other_fixes(&cur, &tmp, &dirty);
    int stable = rc == 0 && cur.n == n && memcmp(cur.p, s, n) == 0;
    /* Without unescape_html the other fixers are stable after one round. */
    while (rc == 0 && unescape && !stable && dirty.n > 0) {
        spans now = dirty;
        dirty = (spans){0};
        next.n = 0;
        rc = tok_buf_put(&next, "", 0);
        size_t pos = 0;
        for (int i = 0; i < now.n && rc == 0;) {
            size_t lo = now.v[i][0] > FTFY_LOOKBACK ? char_start(cur.p, now.v[i][0] - FTFY_LOOKBACK) : 0;
            if (lo < pos)
                lo = pos;
            size_t hi = now.v[i][1];
            for (i++; i < now.n && (now.v[i][0] < FTFY_LOOKBACK + FTFY_MERGE_GAP ||
                                    now.v[i][0] - FTFY_LOOKBACK - FTFY_MERGE_GAP <= hi);
                 i++)
                hi = now.v[i][1];
            hi = hi < cur.n ? char_start(cur.p, hi) : cur.n;
            if ((rc = tok_buf_put(&next, cur.p + pos, lo - pos)) < 0)
                break;
            rc = ftfy_window(&cur, lo, hi, &next, &dirty, &end, &win, &tmp);
            pos = end;
        }
        if (rc == 0)
            rc = tok_buf_put(&next, cur.p + pos, cur.n - pos);
        free(now.v);
        tok_buf swap = cur;
        cur = next, next = swap;
    }
    free(dirty.v);
    if (rc == 0)
        rc = tok_buf_put(out, cur.p, cur.n);
    tok_buf_free(&cur);
    tok_buf_free(&next);
    tok_buf_free(&tmp);
    tok_buf_free(&win);
    return rc;
}

static int ftfy_fix_text(const char *s, size_t n, tok_buf *out) {
    out->n = 0;
    int rc = tok_buf_put(out, "", 0);
    int unescape = 1;
    for (size_t pos = 0; pos < n && rc == 0;) {
        size_t end = pos, chars = 0;
        while (end < n && chars < FTFY_MAX_SEGMENT) {
            uint32_t cp;
            end += (size_t)tok_utf8_next(s + end, n - end, &cp);
            chars++;
            if (cp == '\n')
                break;
        }
        if (unescape && memchr(s + pos, '<', end - pos))
            unescape = 0;
        rc = ftfy_segment(s + pos, end - pos, unescape, out);
        pos = end;
    }
    return rc;
}

/* ---------------------------------------------------------------- whitespace */

/* Python str.strip(): drop leading and trailing str.isspace() characters. */
static void py_strip(const char *s, size_t n, size_t *begin, size_t *end) {
    size_t b = 0, e = n;
    while (b < e) {
        uint32_t cp;
        int l = tok_utf8_next(s + b, e - b, &cp);
        if (!tok_in_ranges(cp, tok_py_space, tok_py_space_count))
            break;
        b += (size_t)l;
    }
    while (e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
        uint32_t cp;
        tok_utf8_next(s + k, e - k, &cp);
        if (!tok_in_ranges(cp, tok_py_space, tok_py_space_count))
            break;
        e = k;
    }
    *begin = b;
    *end = e;
}

/* regex.sub(r'\s+', ' ', s) then strip(). */
static int collapse_whitespace(const char *s, size_t n, tok_buf *out) {
    tok_buf tmp = {0};
    int rc = tok_buf_put(&tmp, "", 0);
    int in_space = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t cp;
        int l = tok_utf8_next(s + i, n - i, &cp);
        if (tok_in_ranges(cp, tok_white_space, tok_white_space_count)) {
            if (!in_space)
                rc = tok_buf_put(&tmp, " ", 1);
            in_space = 1;
        } else {
            rc = tok_buf_put(&tmp, s + i, (size_t)l);
            in_space = 0;
        }
        i += (size_t)l;
    }
    size_t b, e;
    if (rc == 0) {
        py_strip(tmp.p, tmp.n, &b, &e);
        out->n = 0;
        rc = tok_buf_put(out, tmp.p + b, e - b);
    }
    tok_buf_free(&tmp);
    return rc;
}

int tok_clean(const char *text, char **out, au_err *err) {
    *out = NULL;
    size_t n = strlen(text);
    if (!tok_utf8_valid(text, n))
        return au_errf(err, AU_EINVAL, "prompt is not valid UTF-8");
    tok_buf a = {0}, b = {0};
    int rc = ftfy_fix_text(text, n, &a);
    if (rc == 0)
        rc = html_unescape(a.p, a.n, &b);
    if (rc == 0)
        rc = html_unescape(b.p, b.n, &a);
    if (rc == 0) {
        size_t s, e;
        py_strip(a.p, a.n, &s, &e);
        rc = collapse_whitespace(a.p + s, e - s, &b);
    }
    tok_buf_free(&a);
    if (rc < 0) {
        tok_buf_free(&b);
        return au_errf(err, AU_ENOMEM, "out of memory cleaning a %zu-byte prompt", n);
    }
    *out = b.p;
    return 0;
}
