// deps: au_api
/* test_api_multipart.c - multipart/form-data bodies as the OpenAI SDK (httpx) and curl -F
 * send them, boundary parsing, file parts, and malformed bodies (truncated, no boundary,
 * duplicate fields, NUL bytes, invalid UTF-8, too many parts) that must be 400s, not crashes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/multipart.h"
#include "api/video.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static const char *field(json_t *o, const char *name) {
    return json_string_value(json_object_get(o, name));
}

static int parse(const char *ct, const char *body, size_t len, json_t **out, api_error *e) {
    return api_parse_multipart(ct, body, len, out, e);
}

static void test_boundary(void) {
    char b[80];
    CHECK(api_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof b) == 0 &&
          strcmp(b, "abc123") == 0);
    CHECK(api_multipart_boundary("Multipart/Form-Data;boundary=\"a b;c\"", b, sizeof b) == 0 &&
          strcmp(b, "a b;c") == 0);
    CHECK(api_multipart_boundary("multipart/form-data; charset=utf-8; BOUNDARY=x", b, sizeof b) == 0 &&
          strcmp(b, "x") == 0);
    CHECK(api_multipart_boundary("multipart/form-data", b, sizeof b) == -1);
    CHECK(api_multipart_boundary("multipart/form-data; boundary=", b, sizeof b) == -1);
    CHECK(api_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof b) == -1);
    CHECK(api_multipart_boundary("multipart/form-datax; boundary=abc", b, sizeof b) == -1);
    CHECK(api_multipart_boundary("application/json", b, sizeof b) == -1);
    char longb[200];
    snprintf(longb, sizeof longb, "multipart/form-data; boundary=%071d", 0);
    CHECK(api_multipart_boundary(longb, b, sizeof b) == -1);
}

static void test_sdk_body(void) {
    /* what httpx sends for openai.videos.create(prompt=..., seconds="4", size="832x480") */
    static const char body[] = "--9f1d\r\n"
                               "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                               "A calico cat\r\nplaying a piano\r\n"
                               "--9f1d\r\n"
                               "Content-Disposition: form-data; name=\"seconds\"\r\n\r\n"
                               "4\r\n"
                               "--9f1d\r\n"
                               "Content-Disposition: form-data; name=\"size\"\r\n"
                               "Content-Type: text/plain\r\n\r\n"
                               "64x32\r\n"
                               "--9f1d\r\n"
                               "Content-Disposition: form-data; name=\"negative_prompt\"\r\n\r\n"
                               "\r\n"
                               "--9f1d--\r\n";
    json_t *o;
    api_error e;
    CHECK(parse("multipart/form-data; boundary=9f1d", body, sizeof body - 1, &o, &e) == 0);
    CHECK(json_object_size(o) == 4);
    CHECK(strcmp(field(o, "prompt"), "A calico cat\r\nplaying a piano") == 0);
    CHECK(strcmp(field(o, "seconds"), "4") == 0 && strcmp(field(o, "size"), "64x32") == 0);
    CHECK(strcmp(field(o, "negative_prompt"), "") == 0);
    /* the fields go through the same validator as JSON */
    au_model_info mi;
    memset(&mi, 0, sizeof mi);
    snprintf(mi.name, sizeof mi.name, "m");
    mi.default_fps = 16, mi.max_width = 128, mi.max_height = 128, mi.max_frames = 81, mi.max_steps = 10;
    mi.size_multiple = 16;
    api_request r;
    CHECK(api_create_request(o, &mi, &r, &e) == 0);
    CHECK(r.params.width == 64 && r.params.height == 32 && r.params.frames == 65);
    api_request_free(&r);
    json_decref(o);
}

static void test_preamble_file_and_empty(void) {
    static const char body[] =
        "preamble to ignore\r\n"
        "--XyZ\r\n"
        "content-disposition: form-data; name=\"input_reference\"; filename=\"cat.png\"\r\n"
        "Content-Type: image/png\r\n\r\n"
        "\x89PNG\r\n\x1a\n\0\0\0binary"
        "\r\n--XyZ\r\n"
        "Content-Disposition: form-data; name=prompt\r\n\r\n"
        "x"
        "\r\n--XyZ--";
    json_t *o;
    api_error e;
    CHECK(parse("multipart/form-data; boundary=XyZ", body, sizeof body - 1, &o, &e) == 0);
    CHECK(strcmp(field(o, "prompt"), "x") == 0);
    json_t *file = json_object_get(o, "input_reference");
    CHECK(json_is_object(file) && strcmp(field(file, "filename"), "cat.png") == 0);
    /* and the validator names it */
    au_model_info mi;
    memset(&mi, 0, sizeof mi);
    mi.max_prompt_chars = 100;
    api_request r;
    CHECK(api_create_request(o, &mi, &r, &e) == 400 && strcmp(e.param, "input_reference") == 0);
    api_request_free(&r);
    json_decref(o);
    /* a body with only the closing delimiter holds no fields */
    CHECK(parse("multipart/form-data; boundary=b", "--b--\r\n", 7, &o, &e) == 0 && json_object_size(o) == 0);
    json_decref(o);
}

static void expect_400(const char *what, const char *ct, const char *body, size_t len, const char *param) {
    json_t *o = NULL;
    api_error e;
    memset(&e, 0, sizeof e);
    int rc = parse(ct, body, len, &o, &e);
    if (rc != 400 || o != NULL || strcmp(e.param, param) != 0) {
        fprintf(stderr, "%s: rc %d param \"%s\" (%s)\n", what, rc, e.param, e.message);
        failures++;
    }
}

static void test_malformed(void) {
    const char *ct = "multipart/form-data; boundary=b";
#define BODY(s) s, sizeof(s) - 1
    expect_400("no boundary", "multipart/form-data", BODY("--b\r\n"), "");
    expect_400("empty body", ct, "", 0, "");
    expect_400("no delimiter", ct, BODY("hello"), "");
    expect_400("no closing", ct, BODY("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue"), "");
    expect_400("no header end", ct, BODY("--b\r\nContent-Disposition: form-data; name=\"a\""), "");
    expect_400("no disposition", ct, BODY("--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--"), "");
    expect_400("no name", ct, BODY("--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--"), "");
    expect_400("empty name", ct, BODY("--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nv\r\n--b--"),
               "");
    expect_400("unterminated quote", ct,
               BODY("--b\r\nContent-Disposition: form-data; name=\"abc\r\n\r\nv\r\n--b--"), "");
    expect_400("not form-data", ct,
               BODY("--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--b--"), "");
    expect_400("garbage after delimiter", ct, BODY("--bXX\r\n"), "");
    expect_400("duplicate", ct,
               BODY("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                    "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n--b--"),
               "a");
    expect_400("NUL byte", ct, BODY("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\0y\r\n--b--"),
               "a");
    expect_400("bad UTF-8", ct,
               BODY("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--b--"), "a");
    char big[80 * 70];
    size_t n = 0;
    for (int i = 0; i < 65; i++)
        n += snprintf(big + n, sizeof big - n,
                      "--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i);
    n += snprintf(big + n, sizeof big - n, "--b--");
    expect_400("too many parts", ct, big, n, "");
    /* every prefix of a valid body is rejected cleanly, never read past its end */
    static const char ok[] = "--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nhi\r\n--b--";
    for (size_t cut = 0; cut + 2 < sizeof ok - 1; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, ok, cut);
        json_t *o = NULL;
        api_error e;
        int rc = parse(ct, copy, cut, &o, &e);
        CHECK(rc == 400 && o == NULL);
        free(copy);
    }
#undef BODY
}

int main(void) {
    test_boundary();
    test_sdk_body();
    test_preamble_file_and_empty();
    test_malformed();
    if (failures) {
        fprintf(stderr, "test_api_multipart: %d checks failed\n", failures);
        return 1;
    }
    printf("test_api_multipart: ok\n");
    return 0;
}
