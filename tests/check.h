/* check.h - the assertion macros the C tests share.
 *
 * CHECK(cond, fmt, ...)   records a failure with file, line and message, and goes on;
 * REQUIRE(cond, fmt, ...) the same, then exits 1 (for checks later code depends on);
 * check_exit_code()       prints the count and gives main's return value (0 or 1).
 * A test that cannot run here (no GPU, missing golden) prints "skipped: why" and returns 77.
 */
#ifndef AU_TEST_CHECK_H
#define AU_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
        }                                                                                                    \
    } while (0)

#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

static inline int check_exit_code(void) {
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}

#endif
