/* textbuf.h - a growing text buffer for rendered responses (Prometheus text, tables).
 * On allocation failure it stops growing and textbuf_finish returns NULL. */
#ifndef AU_TEXTBUF_H
#define AU_TEXTBUF_H

#include <stddef.h>

typedef struct textbuf {
    char *s;
    size_t len, cap;
    int oom;
} textbuf;

void textbuf_put(textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (caller frees), or NULL after an allocation failure or when nothing was written. */
char *textbuf_finish(textbuf *t);

#endif
