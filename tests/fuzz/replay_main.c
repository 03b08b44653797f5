/* replay_main.c - runs a fuzz target over a committed corpus, for builds without libFuzzer.
 *
 * Usage: fuzz_<name> CORPUS_DIR [FILE...]: every regular file of CORPUS_DIR (and every FILE
 * named after it) is passed to LLVMFuzzerTestOneInput once. A crash, sanitizer report or
 * abort() from the target's own checks fails the run; so does an empty or missing corpus.
 * With clang the targets link -fsanitize=fuzzer instead of this file (see the fuzz_*.c
 * headers for the command).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    /* An exact-size copy, so that reading past the input is caught by the sanitizers. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        exact[i] = buf[i];
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [FILE...]\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "%s: cannot open corpus folder\n", argv[1]);
        return 1;
    }
    int n_files = 0, n_failed = 0;
    char path[4096];
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name) >= (int)sizeof path)
            continue;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || e->d_name[0] == '.')
            continue;
        n_failed += run_file(path) < 0;
        n_files++;
    }
    closedir(d);
    for (int i = 2; i < argc; i++, n_files++)
        n_failed += run_file(argv[i]) < 0;
    printf("%s: %d inputs replayed, %d unreadable\n", argv[0], n_files, n_failed);
    return n_files > 0 && n_failed == 0 ? 0 : 1;
}
