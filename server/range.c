/* range.c - Range header parsing (range.h). */
#include "range.h"

#include <string.h>
#include <strings.h>

/* Digits at *p into *out; sets *overflow when the value exceeds uint64. 0 when no digit. */
static int read_digits(const char **p, uint64_t *out, int *overflow) {
    const char *s = *p;
    uint64_t v = 0;
    *overflow = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            *overflow = 1;
        else
            v = v * 10 + d;
        s++;
    }
    if (s == *p)
        return 0;
    *p = s;
    *out = v;
    return 1;
}

static const char *skip_ows(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

range_result range_parse(const char *header, uint64_t size, byte_range *out) {
    if (!header)
        return RANGE_NONE;
    const char *p = skip_ows(header);
    if (strncasecmp(p, "bytes", 5) != 0)
        return RANGE_NONE;
    p = skip_ows(p + 5);
    if (*p != '=')
        return RANGE_NONE; /* some other unit that merely starts with "bytes" */
    p = skip_ows(p + 1);
    if (strchr(p, ','))
        return RANGE_NONE;
    uint64_t first = 0, last = 0;
    int have_first, have_last, of_first = 0, of_last = 0;
    have_first = read_digits(&p, &first, &of_first);
    if (*p != '-')
        return RANGE_UNSATISFIABLE;
    p++;
    have_last = read_digits(&p, &last, &of_last);
    if (*skip_ows(p) != '\0' || (!have_first && !have_last))
        return RANGE_UNSATISFIABLE;
    if (!have_first) { /* suffix: the last `last` bytes */
        if (last == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        out->first = (of_last || last >= size) ? 0 : size - last;
        out->last = size - 1;
        return RANGE_OK;
    }
    if (have_last && !of_first && !of_last && last < first)
        return RANGE_UNSATISFIABLE;
    if (of_first || first >= size)
        return RANGE_UNSATISFIABLE;
    out->first = first;
    out->last = (!have_last || of_last || last >= size) ? size - 1 : last;
    return RANGE_OK;
}
