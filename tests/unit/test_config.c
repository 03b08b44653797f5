// deps: au_server
/* test_config.c - flags and AUTEUR_* variables: defaults, both flag forms, precedence of
 * flags over the environment, API key lists, and the usage errors (exit code 2) for unknown
 * flags, missing values and bad values; --help and --version stop parsing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

#define ARGV(...)                                                                                            \
    (char *[]) {                                                                                             \
        __VA_ARGS__, NULL                                                                                    \
    }
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define SERVE(c, err, ...) config_serve(c, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)
#define GENERATE(c, err, ...) config_generate(c, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)

static void test_serve(void) {
    serve_config c;
    au_err err;
    CHECK(SERVE(&c, &err, "serve") == CFG_RUN);
    CHECK(strcmp(c.host, "127.0.0.1") == 0 && c.port == 8080 && strcmp(c.data_dir, "./auteur-data") == 0);
    CHECK(c.model_dir[0] != '\0' && c.n_api_keys == 0 && c.max_queue == 100 && c.device == AU_DEVICE_AUTO);
    CHECK(c.max_body_bytes == 1 << 20 && c.lease_seconds == 60 && c.retention_hours == 0);

    CHECK(SERVE(&c, &err, "serve", "--host", "0.0.0.0", "--port=9090", "--data-dir", "/tmp/x", "--model",
                "/m", "--api-key", "k1", "--api-key=k2", "--max-queue", "3", "--device", "cpu", "--threads",
                "2", "--retention-hours", "0.5", "--max-body", "4096") == CFG_RUN);
    CHECK(strcmp(c.host, "0.0.0.0") == 0 && c.port == 9090 && strcmp(c.data_dir, "/tmp/x") == 0);
    CHECK(strcmp(c.model_dir, "/m") == 0 && c.n_api_keys == 2 && strcmp(c.api_keys[1], "k2") == 0);
    CHECK(c.max_queue == 3 && c.device == AU_DEVICE_CPU && c.threads == 2 && c.retention_hours == 0.5);
    CHECK(c.max_body_bytes == 4096);

    /* the environment, and flags over it */
    setenv("AUTEUR_PORT", "7000", 1);
    setenv("AUTEUR_API_KEYS", "a,b,c", 1);
    setenv("AUTEUR_DATA_DIR", "/data", 1);
    CHECK(SERVE(&c, &err, "serve") == CFG_RUN);
    CHECK(c.port == 7000 && c.n_api_keys == 3 && strcmp(c.api_keys[2], "c") == 0 &&
          strcmp(c.data_dir, "/data") == 0);
    CHECK(SERVE(&c, &err, "serve", "--port", "7001", "--api-key", "only") == CFG_RUN);
    CHECK(c.port == 7001 && c.n_api_keys == 1 && strcmp(c.api_keys[0], "only") == 0);
    setenv("AUTEUR_PORT", "seventy", 1);
    CHECK(SERVE(&c, &err, "serve") == CFG_USAGE && strstr(err.msg, "AUTEUR_PORT") != NULL);
    setenv("AUTEUR_API_KEYS", "a,,b", 1);
    setenv("AUTEUR_PORT", "7000", 1);
    CHECK(SERVE(&c, &err, "serve") == CFG_USAGE && strstr(err.msg, "AUTEUR_API_KEYS") != NULL);
    unsetenv("AUTEUR_PORT");
    unsetenv("AUTEUR_API_KEYS");
    unsetenv("AUTEUR_DATA_DIR");

    /* usage errors name the flag */
    CHECK(SERVE(&c, &err, "serve", "--prot", "1") == CFG_USAGE &&
          strstr(err.msg, "unknown option --prot") != NULL);
    CHECK(SERVE(&c, &err, "serve", "--port") == CFG_USAGE && strstr(err.msg, "--port needs a value") != NULL);
    CHECK(SERVE(&c, &err, "serve", "--port", "65536") == CFG_USAGE && strstr(err.msg, "--port") != NULL);
    CHECK(SERVE(&c, &err, "serve", "--port", "80x") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "--port", "") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "--max-queue", "0") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "--device", "tpu") == CFG_USAGE && strstr(err.msg, "--device") != NULL);
    CHECK(SERVE(&c, &err, "serve", "--retention-hours", "-1") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "--retention-hours", "inf") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "stray") == CFG_USAGE && strstr(err.msg, "unexpected argument") != NULL);
    CHECK(SERVE(&c, &err, "serve", "--port=") == CFG_USAGE);
    CHECK(SERVE(&c, &err, "serve", "--api-key", "") == CFG_USAGE);
    char longkey[CFG_KEY_SIZE + 8];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK(SERVE(&c, &err, "serve", "--api-key", longkey) == CFG_USAGE);

    /* help and version end parsing, even after a bad flag would have been seen */
    fflush(stdout);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    CHECK(SERVE(&c, &err, "serve", "--help") == CFG_EXIT);
    CHECK(SERVE(&c, &err, "serve", "-h") == CFG_EXIT);
    CHECK(SERVE(&c, &err, "serve", "--version") == CFG_EXIT);
    CHECK(config_migrate(&(data_config){0}, 2, ARGV("migrate", "--help"), &err) == CFG_EXIT);
    fclose(stdout);
    stdout = saved;
}

static void test_generate(void) {
    generate_config g;
    au_err err;
    CHECK(GENERATE(&g, &err, "generate") == CFG_USAGE && strstr(err.msg, "--prompt") != NULL);
    CHECK(GENERATE(&g, &err, "generate", "-p", "a cat") == CFG_RUN);
    CHECK(strcmp(g.prompt, "a cat") == 0 && strcmp(g.output, "video.mp4") == 0 && g.seed == -1);
    CHECK(g.frames == 0 && g.steps == 0 && g.guidance_scale < 0 && g.shift < 0 && g.seconds < 0);
    CHECK(!g.has_negative_prompt && g.size[0] == '\0');
    CHECK(GENERATE(&g, &err, "generate", "--prompt", "x", "--negative-prompt", "", "--size", "64x32",
                   "--frames", "9", "--fps", "8", "--steps", "3", "--guidance-scale", "4.5", "--seed",
                   "9223372036854775807", "-o", "out.mp4") == CFG_RUN);
    CHECK(g.has_negative_prompt && g.negative_prompt[0] == '\0' && strcmp(g.size, "64x32") == 0);
    CHECK(g.frames == 9 && g.fps == 8 && g.steps == 3 && g.guidance_scale == 4.5);
    CHECK(g.seed == 9223372036854775807LL && strcmp(g.output, "out.mp4") == 0);
    CHECK(GENERATE(&g, &err, "generate", "-p", "x", "--seed", "-5") == CFG_USAGE);
    CHECK(GENERATE(&g, &err, "generate", "-p", "x", "--seed", "9223372036854775808") == CFG_USAGE);
    CHECK(GENERATE(&g, &err, "generate", "-p", "x", "--steps", "0") == CFG_USAGE);
    CHECK(GENERATE(&g, &err, "generate", "-p", "x", "--sampler", "ddim") == CFG_USAGE);
    CHECK(GENERATE(&g, &err, "generate", "-p", "x", "--guidance-scale", "x") == CFG_USAGE);
}

static void test_health_migrate(void) {
    health_config h;
    data_config d;
    au_err err;
    CHECK(config_health(&h, 1, ARGV("health"), &err) == CFG_RUN && h.port == 8080);
    CHECK(config_health(&h, 3, ARGV("health", "--port", "0"), &err) == CFG_USAGE);
    CHECK(config_migrate(&d, 3, ARGV("migrate", "--data-dir", "/d"), &err) == CFG_RUN &&
          strcmp(d.data_dir, "/d") == 0);
    CHECK(config_migrate(&d, 3, ARGV("migrate", "--model", "/m"), &err) == CFG_USAGE);
}

int main(void) {
    unsetenv("AUTEUR_PORT");
    unsetenv("AUTEUR_HOST");
    unsetenv("AUTEUR_API_KEYS");
    unsetenv("AUTEUR_DATA_DIR");
    unsetenv("AUTEUR_MODEL");
    test_serve();
    test_generate();
    test_health_migrate();
    if (failures) {
        fprintf(stderr, "test_config: %d checks failed\n", failures);
        return 1;
    }
    printf("test_config: ok\n");
    return 0;
}
