/* multipart.h - multipart/form-data request bodies (RFC 7578) as a JSON object.
 *
 * The official OpenAI SDKs send POST /v1/videos as multipart/form-data. Each text part
 * becomes a string member named by its Content-Disposition name; a file part (one with a
 * filename) becomes {"filename": "..."} so the validator can reject it by name. Parts must
 * be UTF-8 without NUL bytes; a name may appear once; at most API_MULTIPART_MAX_PARTS parts.
 */
#ifndef AU_API_MULTIPART_H
#define AU_API_MULTIPART_H

#include <jansson.h>
#include <stddef.h>

#include "api/errors.h"

#define API_MULTIPART_MAX_PARTS 64

/* The boundary parameter of a multipart/form-data Content-Type, unquoted, into out
 * (size cap). 0, or -1 when the type is not multipart/form-data or has no usable boundary. */
int api_multipart_boundary(const char *content_type, char *out, size_t cap);

/* Parse body; *fields is a new JSON object on success. 0 or the HTTP status of e. */
int api_parse_multipart(const char *content_type, const char *body, size_t len, json_t **fields,
                        api_error *e);

#endif
