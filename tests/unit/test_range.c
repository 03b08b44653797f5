// deps: au_server
/* test_range.c - Range header parsing: the three single-range forms, clamping, the headers
 * that are ignored (200) and the ones that are unsatisfiable (416), overflow and junk.
 */
#include <stdio.h>

#include "server/range.h"

static int failures;

static void expect(const char *header, uint64_t size, range_result want, uint64_t first, uint64_t last) {
    byte_range r = {0, 0};
    range_result got = range_parse(header, size, &r);
    if (got != want || (want == RANGE_OK && (r.first != first || r.last != last))) {
        fprintf(stderr, "Range \"%s\" size %llu: got %d [%llu, %llu], expected %d [%llu, %llu]\n",
                header ? header : "(null)", (unsigned long long)size, got, (unsigned long long)r.first,
                (unsigned long long)r.last, want, (unsigned long long)first, (unsigned long long)last);
        failures++;
    }
}

int main(void) {
    /* served as 206 */
    expect("bytes=0-0", 1000, RANGE_OK, 0, 0);
    expect("bytes=0-499", 1000, RANGE_OK, 0, 499);
    expect("bytes=500-999", 1000, RANGE_OK, 500, 999);
    expect("bytes=500-", 1000, RANGE_OK, 500, 999);
    expect("bytes=900-5000", 1000, RANGE_OK, 900, 999); /* last clamped */
    expect("bytes=-100", 1000, RANGE_OK, 900, 999);     /* suffix */
    expect("bytes=-5000", 1000, RANGE_OK, 0, 999);      /* suffix longer than the file */
    expect("bytes=999-999", 1000, RANGE_OK, 999, 999);
    expect("Bytes = 10-20 ", 1000, RANGE_OK, 10, 20);
    expect("bytes=0-99999999999999999999999", 1000, RANGE_OK, 0, 999); /* overflowing last */
    expect("bytes=-99999999999999999999999", 1000, RANGE_OK, 0, 999);
    /* ignored: the whole file, 200 */
    expect(NULL, 1000, RANGE_NONE, 0, 0);
    expect("", 1000, RANGE_NONE, 0, 0);
    expect("items=0-5", 1000, RANGE_NONE, 0, 0);
    expect("bytesx=0-5", 1000, RANGE_NONE, 0, 0);
    expect("bytes=0-5,10-20", 1000, RANGE_NONE, 0, 0);
    /* 416 */
    expect("bytes=1000-", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=1000-1001", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=99999999999999999999999-", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=20-10", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=-0", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=-", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=abc", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=1-2x", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=+1-2", 1000, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=-1", 0, RANGE_UNSATISFIABLE, 0, 0);
    if (failures) {
        fprintf(stderr, "test_range: %d cases failed\n", failures);
        return 1;
    }
    printf("test_range: ok\n");
    return 0;
}
