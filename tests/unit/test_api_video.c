// deps: au_api
/* test_api_video.c - request validation of POST /v1/videos and /remix (every field, good and
 * bad values, JSON numbers and strings), seconds -> frames rounding, the error envelope and
 * the rendering of the video, list, deleted and model objects.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/errors.h"
#include "api/video.h"

static int failures;
#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static au_model_info model(void) {
    au_model_info mi;
    memset(&mi, 0, sizeof mi);
    snprintf(mi.name, sizeof mi.name, "wan2.1-t2v-tiny");
    mi.default_width = 832;
    mi.default_height = 480;
    mi.default_frames = 81;
    mi.default_fps = 16;
    mi.default_steps = 50;
    mi.default_guidance = 5.0f;
    mi.default_shift = 5.0f;
    snprintf(mi.default_sampler, sizeof mi.default_sampler, "unipc");
    mi.max_width = 1280;
    mi.max_height = 1280;
    mi.max_frames = 81;
    mi.max_steps = 100;
    mi.max_prompt_chars = 20;
    mi.size_multiple = 16;
    return mi;
}

/* Validate a JSON body; returns the HTTP status (0 = accepted) and fills r and e. */
static int create(const char *json, const au_model_info *mi, api_request *r, api_error *e) {
    json_t *fields;
    memset(r, 0, sizeof *r);
    int rc = api_parse_json_body(json, strlen(json), &fields, e);
    if (rc)
        return rc;
    rc = api_create_request(fields, mi, r, e);
    json_decref(fields);
    return rc;
}

/* A request that must fail with status and param. */
static void bad(const char *json, int status, const char *param) {
    au_model_info mi = model();
    api_request r;
    api_error e;
    memset(&e, 0, sizeof e);
    int rc = create(json, &mi, &r, &e);
    if (rc != status || strcmp(e.param, param) != 0) {
        fprintf(stderr, "request %s: got %d param \"%s\" (%s), expected %d param \"%s\"\n", json, rc, e.param,
                e.message, status, param);
        failures++;
    }
    CHECK(e.message[0] != '\0');
    api_request_free(&r);
}

static void test_defaults_unset(void) {
    au_model_info mi = model();
    api_request r;
    api_error e;
    CHECK(create("{\"prompt\": \"a cat\"}", &mi, &r, &e) == 0);
    CHECK(strcmp(r.params.prompt, "a cat") == 0 && r.params.negative_prompt == NULL);
    CHECK(r.params.width == 0 && r.params.height == 0 && r.params.frames == 0 && r.params.steps == 0);
    CHECK(r.params.guidance_scale == AU_UNSET_F && r.params.shift == AU_UNSET_F && r.params.seed == -1);
    CHECK(r.params.sampler == NULL && r.fps == 16 && r.seconds[0] == '\0' && r.remixed_from[0] == '\0');
    api_request_free(&r);
}

static void test_every_field_good(void) {
    au_model_info mi = model();
    api_request r;
    api_error e;
    /* JSON numbers */
    CHECK(
        create(
            "{\"prompt\":\"a "
            "cat\",\"model\":\"wan2.1-t2v-tiny\",\"size\":\"64x32\",\"negative_prompt\":\"blur\","
            "\"seed\":9007199254740993,\"steps\":7,\"guidance_scale\":4.5,\"shift\":3,\"sampler\":\"euler\","
            "\"fps\":8,\"frames\":9}",
            &mi, &r, &e) == 0);
    CHECK(r.params.width == 64 && r.params.height == 32 && r.params.frames == 9 && r.params.steps == 7);
    CHECK(r.params.guidance_scale == 4.5f && r.params.shift == 3.0f &&
          strcmp(r.params.sampler, "euler") == 0);
    CHECK(r.params.seed == 9007199254740993LL && r.fps == 8 && strcmp(r.params.negative_prompt, "blur") == 0);
    api_request_free(&r);
    /* strings, as multipart and the OpenAI SDK send them */
    CHECK(
        create("{\"prompt\":\"a cat\",\"seconds\":\"2\",\"size\":\"832x480\",\"seed\":\"12\",\"steps\":\"3\","
               "\"guidance_scale\":\"1.5\",\"shift\":\"8\",\"fps\":\"16\",\"sampler\":\"unipc\",\"negative_"
               "prompt\":\"\"}",
               &mi, &r, &e) == 0);
    CHECK(r.params.frames == 33 && strcmp(r.seconds, "2") == 0); /* 2 s x 16 fps = 32 -> 33 */
    CHECK(r.params.seed == 12 && r.params.steps == 3 && r.params.guidance_scale == 1.5f &&
          r.params.shift == 8.0f);
    CHECK(strcmp(r.params.negative_prompt, "") == 0); /* "" = no negative prompt, not the default */
    api_request_free(&r);
    /* numbers for seconds; null means absent; integral reals are integers */
    CHECK(create("{\"prompt\":\"x\",\"seconds\":4,\"steps\":5.0,\"seed\":null,\"model\":null}", &mi, &r,
                 &e) == 0);
    CHECK(r.params.frames == 65 && strcmp(r.seconds, "4") == 0 && r.params.steps == 5 && r.params.seed == -1);
    api_request_free(&r);
    /* frames wins over seconds */
    CHECK(create("{\"prompt\":\"x\",\"seconds\":\"4\",\"frames\":5}", &mi, &r, &e) == 0);
    CHECK(r.params.frames == 5);
    api_request_free(&r);
    /* limits are inclusive; the prompt limit counts characters, not bytes */
    CHECK(create(
              "{\"prompt\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"frames\":"
              "81,"
              "\"steps\":100,\"size\":\"1280x1280\",\"guidance_scale\":0,\"seed\":0}",
              &mi, &r, &e) == 0);
    api_request_free(&r);
}

static void test_seconds_rounding(void) {
    static const struct {
        const char *seconds;
        int fps, frames;
    } cases[] = {{"1", 16, 17},      {"0.1", 16, 1}, {"5", 16, 81},
                 {"5.0625", 16, 81}, {"3", 10, 29},  {"1", 24, 25}};
    au_model_info mi = model();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[128];
        api_request r;
        api_error e;
        snprintf(json, sizeof json, "{\"prompt\":\"x\",\"seconds\":\"%s\",\"fps\":%d}", cases[i].seconds,
                 cases[i].fps);
        int rc = create(json, &mi, &r, &e);
        if (rc != 0 || r.params.frames != cases[i].frames) {
            fprintf(stderr, "seconds %s at %d fps: rc %d frames %d, expected %d\n", cases[i].seconds,
                    cases[i].fps, rc, r.params.frames, cases[i].frames);
            failures++;
        }
        api_request_free(&r);
    }
}

static void test_every_field_bad(void) {
    bad("", 400, "");
    bad("{\"prompt\": ", 400, "");
    bad("[\"prompt\"]", 400, "");
    bad("{\"prompt\":\"a\",\"prompt\":\"b\"}", 400, "");
    bad("{}", 400, "prompt");
    bad("{\"prompt\":\"   \"}", 400, "prompt");
    bad("{\"prompt\":5}", 400, "prompt");
    bad("{\"prompt\":\"this prompt is longer than twenty\"}", 400, "prompt");
    bad("{\"prompt\":\"x\",\"model\":\"sora-2\"}", 400, "model");
    bad("{\"prompt\":\"x\",\"model\":1}", 400, "model");
    bad("{\"prompt\":\"x\",\"negative_prompt\":[]}", 400, "negative_prompt");
    bad("{\"prompt\":\"x\",\"negative_prompt\":\"this one is also longer than twenty\"}", 400,
        "negative_prompt");
    bad("{\"prompt\":\"x\",\"size\":\"832\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"832x\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"x480\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"832X480\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"832x480 \"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"-16x16\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"0x16\"}", 400, "size");
    bad("{\"prompt\":\"x\",\"size\":\"830x480\"}", 400, "size");  /* not a multiple of 16 */
    bad("{\"prompt\":\"x\",\"size\":\"1296x480\"}", 400, "size"); /* over max_width */
    bad("{\"prompt\":\"x\",\"size\":832}", 400, "size");
    bad("{\"prompt\":\"x\",\"seconds\":\"four\"}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"seconds\":\"4s\"}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"seconds\":0}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"seconds\":-4}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"seconds\":\"nan\"}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"seconds\":\"12\"}", 400, "seconds"); /* 193 frames > 81 */
    bad("{\"prompt\":\"x\",\"seconds\":true}", 400, "seconds");
    bad("{\"prompt\":\"x\",\"frames\":4}", 400, "frames");
    bad("{\"prompt\":\"x\",\"frames\":0}", 400, "frames");
    bad("{\"prompt\":\"x\",\"frames\":85}", 400, "frames");
    bad("{\"prompt\":\"x\",\"frames\":\"9.5\"}", 400, "frames");
    bad("{\"prompt\":\"x\",\"frames\":9.5}", 400, "frames");
    bad("{\"prompt\":\"x\",\"steps\":0}", 400, "steps");
    bad("{\"prompt\":\"x\",\"steps\":101}", 400, "steps");
    bad("{\"prompt\":\"x\",\"steps\":\"ten\"}", 400, "steps");
    bad("{\"prompt\":\"x\",\"steps\":\" 10\"}", 400, "steps");
    bad("{\"prompt\":\"x\",\"fps\":0}", 400, "fps");
    bad("{\"prompt\":\"x\",\"fps\":121}", 400, "fps");
    bad("{\"prompt\":\"x\",\"guidance_scale\":-1}", 400, "guidance_scale");
    bad("{\"prompt\":\"x\",\"guidance_scale\":50.5}", 400, "guidance_scale");
    bad("{\"prompt\":\"x\",\"guidance_scale\":\"high\"}", 400, "guidance_scale");
    bad("{\"prompt\":\"x\",\"shift\":0}", 400, "shift");
    bad("{\"prompt\":\"x\",\"shift\":\"-2\"}", 400, "shift");
    bad("{\"prompt\":\"x\",\"sampler\":\"ddim\"}", 400, "sampler");
    bad("{\"prompt\":\"x\",\"sampler\":1}", 400, "sampler");
    bad("{\"prompt\":\"x\",\"seed\":-1}", 400, "seed");
    bad("{\"prompt\":\"x\",\"seed\":\"18446744073709551615\"}", 400, "seed");
    bad("{\"prompt\":\"x\",\"seed\":\"0x10\"}", 400, "seed");
    bad("{\"prompt\":\"x\",\"input_reference\":\"img.png\"}", 400, "input_reference");
    bad("{\"prompt\":\"x\",\"colour\":\"blue\"}", 400, "colour");
    /* a model that lists its sizes accepts only those */
    au_model_info mi = model();
    mi.n_sizes = 2;
    mi.sizes[0][0] = 832, mi.sizes[0][1] = 480;
    mi.sizes[1][0] = 480, mi.sizes[1][1] = 832;
    api_request r;
    api_error e;
    CHECK(create("{\"prompt\":\"x\",\"size\":\"480x832\"}", &mi, &r, &e) == 0);
    api_request_free(&r);
    CHECK(create("{\"prompt\":\"x\",\"size\":\"480x480\"}", &mi, &r, &e) == 400 &&
          strcmp(e.param, "size") == 0);
    api_request_free(&r);
}

static api_video sample_video(void) {
    api_video v;
    memset(&v, 0, sizeof v);
    snprintf(v.id, sizeof v.id, "video_0123456789abcdef0123456789abcdef");
    v.created_at = 1700000000;
    v.status = API_QUEUED;
    snprintf(v.model, sizeof v.model, "wan2.1-t2v-tiny");
    v.prompt = strdup("a \"quoted\" cat");
    snprintf(v.seconds, sizeof v.seconds, "4");
    v.width = 832, v.height = 480, v.frames = 65, v.fps = 16, v.steps = 50;
    v.guidance_scale = 5.1f, v.shift = 5.0;
    snprintf(v.sampler, sizeof v.sampler, "unipc");
    v.seed = 123;
    return v;
}

static void test_remix(void) {
    au_model_info mi = model();
    api_video src = sample_video();
    src.negative_prompt = strdup("grainy");
    api_request r;
    api_error e;
    json_t *f = json_pack("{s:s}", "prompt", "a dog instead");
    CHECK(api_remix_request(f, &mi, &src, &r, &e) == 0);
    CHECK(strcmp(r.params.prompt, "a dog instead") == 0 && strcmp(r.params.negative_prompt, "grainy") == 0);
    CHECK(r.params.width == 832 && r.params.height == 480 && r.params.frames == 65 && r.params.steps == 50);
    CHECK(r.params.seed == 123 && r.fps == 16 && strcmp(r.params.sampler, "unipc") == 0);
    CHECK(strcmp(r.remixed_from, src.id) == 0 && strcmp(r.seconds, "4") == 0);
    /* the stored row keeps the request's strings and the resolved numbers */
    au_gen_params resolved = r.params;
    api_video out;
    au_err err;
    CHECK(api_video_from_request(&r, &resolved, mi.name, "video_ffffffffffffffffffffffffffffffff", 1700000100,
                                 &out, &err) == 0);
    CHECK(strcmp(out.remixed_from, src.id) == 0 && out.seed == 123 && out.status == API_QUEUED);
    CHECK(strcmp(out.prompt, "a dog instead") == 0 && strcmp(out.negative_prompt, "grainy") == 0);
    api_video_clear(&out);
    api_request_free(&r);
    json_decref(f);
    f = json_pack("{s:s, s:i}", "prompt", "x", "seed", 5);
    CHECK(api_remix_request(f, &mi, &src, &r, &e) == 400 && strcmp(e.param, "seed") == 0);
    api_request_free(&r);
    json_decref(f);
    f = json_object();
    CHECK(api_remix_request(f, &mi, &src, &r, &e) == 400 && strcmp(e.param, "prompt") == 0);
    api_request_free(&r);
    json_decref(f);
    api_video_clear(&src);
}

static void test_from_request_seconds(void) {
    au_model_info mi = model();
    api_request r;
    api_error e;
    au_err err;
    api_video out;
    CHECK(create("{\"prompt\":\"x\",\"frames\":81}", &mi, &r, &e) == 0);
    au_gen_params resolved = r.params;
    resolved.width = 832, resolved.height = 480, resolved.steps = 50, resolved.seed = 77;
    resolved.guidance_scale = 5, resolved.shift = 5, resolved.sampler = "unipc";
    CHECK(api_video_from_request(&r, &resolved, mi.name, "video_00000000000000000000000000000001", 5, &out,
                                 &err) == 0);
    CHECK(strcmp(out.seconds, "5.0625") == 0 && out.negative_prompt == NULL && out.fps == 16 &&
          out.seed == 77);
    api_video_clear(&out);
    api_request_free(&r);
}

static void test_render(void) {
    api_video v = sample_video();
    char *s = api_video_render(&v);
    json_t *o = json_loads(s, 0, NULL);
    CHECK(o != NULL);
    CHECK(strcmp(json_string_value(json_object_get(o, "id")), v.id) == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "object")), "video") == 0);
    CHECK(json_integer_value(json_object_get(o, "created_at")) == 1700000000);
    CHECK(strcmp(json_string_value(json_object_get(o, "status")), "queued") == 0);
    CHECK(json_integer_value(json_object_get(o, "progress")) == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "size")), "832x480") == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "seconds")), "4") == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "prompt")), "a \"quoted\" cat") == 0);
    CHECK(json_is_null(json_object_get(o, "completed_at")) && json_is_null(json_object_get(o, "expires_at")));
    CHECK(json_is_null(json_object_get(o, "error")) &&
          json_is_null(json_object_get(o, "remixed_from_video_id")));
    CHECK(json_is_null(json_object_get(o, "negative_prompt")));
    CHECK(json_integer_value(json_object_get(o, "seed")) == 123 &&
          json_integer_value(json_object_get(o, "frames")) == 65);
    CHECK(json_integer_value(json_object_get(o, "fps")) == 16 &&
          json_integer_value(json_object_get(o, "steps")) == 50);
    CHECK(strcmp(json_string_value(json_object_get(o, "sampler")), "unipc") == 0);
    CHECK(strstr(s, "\"guidance_scale\":5.1,") != NULL); /* float32 printed as given */
    json_decref(o);
    free(s);
    /* failed: the error object appears; a retried attempt's error does not */
    v.status = API_FAILED;
    v.completed_at = 1700000500;
    snprintf(v.error_code, sizeof v.error_code, "backend_error");
    snprintf(v.error_message, sizeof v.error_message, "out of memory (gave up after 3 attempts)");
    s = api_video_render(&v);
    o = json_loads(s, 0, NULL);
    json_t *err = json_object_get(o, "error");
    CHECK(strcmp(json_string_value(json_object_get(err, "code")), "backend_error") == 0);
    CHECK(strstr(json_string_value(json_object_get(err, "message")), "3 attempts") != NULL);
    CHECK(json_integer_value(json_object_get(o, "completed_at")) == 1700000500);
    json_decref(o);
    free(s);
    v.status = API_QUEUED;
    s = api_video_render(&v);
    o = json_loads(s, 0, NULL);
    CHECK(json_is_null(json_object_get(o, "error")));
    json_decref(o);
    free(s);

    /* list */
    api_video items[2] = {v, v};
    snprintf(items[1].id, sizeof items[1].id, "video_11111111111111111111111111111111");
    s = api_list_render(items, 2, 1);
    o = json_loads(s, 0, NULL);
    CHECK(strcmp(json_string_value(json_object_get(o, "object")), "list") == 0);
    CHECK(json_array_size(json_object_get(o, "data")) == 2);
    CHECK(strcmp(json_string_value(json_object_get(o, "first_id")), v.id) == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "last_id")), items[1].id) == 0);
    CHECK(json_is_true(json_object_get(o, "has_more")));
    json_decref(o);
    free(s);
    s = api_list_render(NULL, 0, 0);
    CHECK(strcmp(s,
                 "{\"object\":\"list\",\"data\":[],\"first_id\":null,\"last_id\":null,\"has_more\":false}") ==
          0);
    free(s);
    s = api_deleted_render(v.id);
    CHECK(strcmp(s, "{\"id\":\"video_0123456789abcdef0123456789abcdef\",\"object\":\"video.deleted\","
                    "\"deleted\":true}") == 0);
    free(s);
    au_model_info mi = model();
    s = api_models_render(&mi, 42);
    o = json_loads(s, 0, NULL);
    json_t *m0 = json_array_get(json_object_get(o, "data"), 0);
    CHECK(strcmp(json_string_value(json_object_get(m0, "id")), "wan2.1-t2v-tiny") == 0);
    CHECK(strcmp(json_string_value(json_object_get(m0, "object")), "model") == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(m0, "limits"), "max_frames")) == 81);
    json_decref(o);
    free(s);
    api_video_clear(&v);
}

static void test_ids_and_status(void) {
    CHECK(api_id_valid("video_0123456789abcdef0123456789abcdef"));
    CHECK(!api_id_valid("video_0123456789ABCDEF0123456789abcdef"));
    CHECK(!api_id_valid("video_0123456789abcdef0123456789abcde"));
    CHECK(!api_id_valid("video_0123456789abcdef0123456789abcdef0"));
    CHECK(!api_id_valid("video_../../../../etc/passwd0000000000"));
    CHECK(!api_id_valid("clip_0123456789abcdef0123456789abcdef"));
    CHECK(!api_id_valid(""));
    api_status st;
    CHECK(api_status_parse("in_progress", &st) == 0 && st == API_IN_PROGRESS);
    CHECK(api_status_parse("cancelled", &st) == AU_EINVAL);
    CHECK(strcmp(api_status_name(API_COMPLETED), "completed") == 0);
}

static void test_errors(void) {
    api_error e;
    au_err err;
    static const struct {
        int code, http;
    } map[] = {{AU_EINVAL, 400},       {AU_EFORMAT, 400}, {AU_ENOTFOUND, 404}, {AU_ECONFLICT, 409},
               {AU_EUNSUPPORTED, 422}, {AU_EBUSY, 429},   {AU_EIO, 500},       {AU_EINTERNAL, 500}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        au_errf(&err, map[i].code, "thing: went wrong");
        CHECK(api_error_from_status(&e, &err, NULL) == map[i].http && e.http_status == map[i].http);
    }
    au_errf(&err, AU_EINVAL, "frames: must be of the form 4k+1, got 8");
    CHECK(api_error_from_resolve(&e, &err) == 400 && strcmp(e.param, "frames") == 0);
    au_errf(&err, AU_EINVAL, "bad things happened: no field");
    CHECK(api_error_from_resolve(&e, &err) == 400 && e.param[0] == '\0');
    api_errorf(&e, 404, "not_found", "video_id", "no video with id %s", "video_x\xff");
    char *s = api_error_body(&e);
    json_t *o = json_loads(s, 0, NULL);
    json_t *in = json_object_get(o, "error");
    CHECK(in && strcmp(json_string_value(json_object_get(in, "type")), "not_found_error") == 0);
    CHECK(strcmp(json_string_value(json_object_get(in, "param")), "video_id") == 0);
    CHECK(strcmp(json_string_value(json_object_get(in, "code")), "not_found") == 0);
    CHECK(strcmp(json_string_value(json_object_get(in, "message")), "no video with id video_x?") == 0);
    json_decref(o);
    free(s);
    api_errorf(&e, 500, NULL, NULL, "boom");
    s = api_error_body(&e);
    CHECK(
        strcmp(s,
               "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}") ==
        0);
    free(s);
    api_errorf(&e, 401, "invalid_api_key", NULL, "x");
    CHECK(strcmp(e.type, "authentication_error") == 0);
}

int main(void) {
    test_defaults_unset();
    test_every_field_good();
    test_seconds_rounding();
    test_every_field_bad();
    test_remix();
    test_from_request_seconds();
    test_render();
    test_ids_and_status();
    test_errors();
    if (failures) {
        fprintf(stderr, "test_api_video: %d checks failed\n", failures);
        return 1;
    }
    printf("test_api_video: ok\n");
    return 0;
}
