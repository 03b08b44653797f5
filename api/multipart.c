/* multipart.c - a small multipart/form-data parser over an in-memory body (multipart.h).
 *
 * Layout: [preamble] "--B" CRLF part ( CRLF "--B" CRLF part )* CRLF "--B--" [epilogue],
 * a part being header lines, an empty line, then the value. The value ends at the next
 * CRLF "--B". Header names are case-insensitive; only Content-Disposition matters here.
 */
#include "api/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* memmem without relying on _GNU_SOURCE. */
static const char *find_bytes(const char *hay, size_t hay_len, const char *needle, size_t n) {
    if (n == 0 || hay_len < n)
        return NULL;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* Value of parameter `name` in a header like `form-data; name="x"; filename="y"`, into out.
 * Returns 1 when found, 0 when absent, -1 when malformed or too long. */
static int header_param(const char *h, size_t len, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        /* move to the next ';' separated parameter */
        while (i < len && h[i] != ';')
            i++;
        if (i >= len)
            return 0;
        i++;
        while (i < len && (h[i] == ' ' || h[i] == '\t'))
            i++;
        if (i + nlen + 1 > len || strncasecmp(h + i, name, nlen) != 0 || h[i + nlen] != '=')
            continue;
        i += nlen + 1;
        size_t o = 0;
        if (i < len && h[i] == '"') {
            i++;
            while (i < len && h[i] != '"') {
                if (h[i] == '\\' && i + 1 < len)
                    i++;
                if (o + 1 >= cap)
                    return -1;
                out[o++] = h[i++];
            }
            if (i >= len)
                return -1;
        } else {
            while (i < len && h[i] != ';' && h[i] != ' ' && h[i] != '\t') {
                if (o + 1 >= cap)
                    return -1;
                out[o++] = h[i++];
            }
        }
        out[o] = '\0';
        return 1;
    }
    return 0;
}

int api_multipart_boundary(const char *content_type, char *out, size_t cap) {
    static const char type[] = "multipart/form-data";
    if (!content_type || strncasecmp(content_type, type, sizeof type - 1) != 0)
        return -1;
    const char *rest = content_type + sizeof type - 1;
    if (*rest && *rest != ';' && *rest != ' ')
        return -1;
    if (header_param(rest, strlen(rest), "boundary", out, cap) != 1)
        return -1;
    size_t n = strlen(out);
    return n >= 1 && n <= 70 ? 0 : -1; /* RFC 2046: 1..70 characters */
}

/* Parse one part's header block [h, h+len): the field name and whether it is a file. */
static int part_headers(const char *h, size_t len, char *name, size_t name_cap, char *filename, size_t fcap,
                        int *is_file, api_error *e) {
    int have_disposition = 0;
    *is_file = 0;
    name[0] = '\0';
    while (len > 0) {
        const char *eol = find_bytes(h, len, "\r\n", 2);
        size_t line_len = eol ? (size_t)(eol - h) : len;
        static const char cd[] = "content-disposition:";
        if (line_len >= sizeof cd - 1 && strncasecmp(h, cd, sizeof cd - 1) == 0) {
            const char *v = h + sizeof cd - 1;
            size_t vlen = line_len - (sizeof cd - 1);
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            if (vlen < 9 || strncasecmp(v, "form-data", 9) != 0)
                return api_errorf(e, 400, "invalid_multipart", NULL,
                                  "a part's Content-Disposition is not form-data");
            if (header_param(v, vlen, "name", name, name_cap) != 1 || !name[0])
                return api_errorf(e, 400, "invalid_multipart", NULL, "a form-data part has no usable name");
            int f = header_param(v, vlen, "filename", filename, fcap);
            if (f < 0)
                return api_errorf(e, 400, "invalid_multipart", name, "part %s has a malformed filename",
                                  name);
            *is_file = f == 1;
            have_disposition = 1;
        }
        if (!eol)
            break;
        len -= line_len + 2;
        h = eol + 2;
    }
    if (!have_disposition)
        return api_errorf(e, 400, "invalid_multipart", NULL, "a part has no Content-Disposition header");
    return 0;
}

int api_parse_multipart(const char *content_type, const char *body, size_t len, json_t **fields,
                        api_error *e) {
    char boundary[80], delim[96];
    *fields = NULL;
    if (api_multipart_boundary(content_type, boundary, sizeof boundary) != 0)
        return api_errorf(e, 400, "invalid_multipart", NULL,
                          "multipart/form-data needs a boundary parameter of 1 to 70 characters");
    /* "\r\n--B": the body is searched from a virtual leading CRLF so the first delimiter
     * may start at offset 0. */
    int dlen = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    json_t *obj = json_object();
    if (!obj)
        return api_errorf(e, 500, "out_of_memory", NULL, "out of memory");
    const char *p;
    if (len >= (size_t)dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
        p = body + dlen - 2;
    else {
        const char *d = find_bytes(body, len, delim, dlen);
        if (!d)
            goto truncated;
        p = d + dlen;
    }
    const char *end = body + len;
    int n_parts = 0;
    for (;;) {
        /* p is just past a delimiter: "--" closes, CRLF opens a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            goto truncated;
        p += 2;
        const char *hdr_end = find_bytes(p, end - p, "\r\n\r\n", 4);
        const char *value;
        size_t hdr_len;
        if (p + 2 <= end && p[0] == '\r' && p[1] == '\n') { /* no headers at all */
            hdr_len = 0;
            value = p + 2;
        } else if (hdr_end) {
            hdr_len = hdr_end - p;
            value = hdr_end + 4;
        } else {
            goto truncated;
        }
        const char *next = find_bytes(value, end - value, delim, dlen);
        if (!next)
            goto truncated;
        if (++n_parts > API_MULTIPART_MAX_PARTS) {
            json_decref(obj);
            return api_errorf(e, 400, "invalid_multipart", NULL, "more than %d form-data parts",
                              API_MULTIPART_MAX_PARTS);
        }
        char name[64], filename[256];
        int is_file, rc;
        if ((rc = part_headers(p, hdr_len, name, sizeof name, filename, sizeof filename, &is_file, e))) {
            json_decref(obj);
            return rc;
        }
        if (json_object_get(obj, name)) {
            json_decref(obj);
            return api_errorf(e, 400, "duplicate_parameter", name, "form field %s appears more than once",
                              name);
        }
        size_t vlen = next - value;
        json_t *v;
        if (is_file) {
            v = json_pack("{s:s}", "filename", filename);
        } else {
            v = memchr(value, '\0', vlen) ? NULL : json_stringn(value, vlen);
            if (!v) {
                json_decref(obj);
                return api_errorf(e, 400, "invalid_value", name, "form field %s is not valid UTF-8 text",
                                  name);
            }
        }
        json_object_set_new(obj, name, v);
        p = next + dlen;
    }
    *fields = obj;
    return 0;
truncated:
    json_decref(obj);
    return api_errorf(e, 400, "invalid_multipart", NULL,
                      "multipart body is truncated or its boundary is missing");
}
