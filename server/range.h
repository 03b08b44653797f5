/* range.h - the HTTP Range request header for downloads (RFC 9110 section 14).
 *
 * One byte range is served as 206: "bytes=first-last", "bytes=first-" and the suffix form
 * "bytes=-length". Anything else is classified:
 *   - no header, another unit, or several ranges: RANGE_NONE (the whole file, 200; a server
 *     may ignore Range and multipart/byteranges is not worth having here);
 *   - a malformed byte range (last < first, junk, "bytes=-0") or one that starts at or past
 *     the end of the file: RANGE_UNSATISFIABLE (416 with "Content-Range: bytes * /size").
 * last is clamped to size - 1.
 */
#ifndef AU_RANGE_H
#define AU_RANGE_H

#include <stdint.h>

typedef enum range_result { RANGE_NONE = 0, RANGE_OK, RANGE_UNSATISFIABLE } range_result;

typedef struct byte_range {
    uint64_t first, last; /* inclusive; valid when RANGE_OK */
} byte_range;

range_result range_parse(const char *header, uint64_t size, byte_range *out);

#endif
