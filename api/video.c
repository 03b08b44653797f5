/* video.c - validation of the create/remix requests and rendering of the video object
 * (video.h).
 *
 * Every field is checked here against the loaded model's au_model_info so that a bad value
 * is a 400 naming the field before a job exists; pipeline_resolve_params then fills the
 * defaults and checks once more. seconds -> frames: n = seconds * fps, frames = 4k + 1 with
 * k = round((n - 1) / 4), at least 1.
 */
#include "api/video.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seed limits: non-negative int64 (the pipeline's -1 means "draw one"). */
#define SEED_MAX INT64_MAX

static const char *const status_names[] = {"queued", "in_progress", "completed", "failed"};

const char *api_status_name(api_status s) {
    return (unsigned)s < 4 ? status_names[s] : "unknown";
}

int api_status_parse(const char *name, api_status *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (api_status)i;
            return 0;
        }
    return AU_EINVAL;
}

void api_video_clear(api_video *v) {
    free(v->prompt);
    free(v->negative_prompt);
    memset(v, 0, sizeof *v);
}

int api_video_copy(api_video *dst, const api_video *src) {
    *dst = *src;
    dst->prompt = src->prompt ? strdup(src->prompt) : NULL;
    dst->negative_prompt = src->negative_prompt ? strdup(src->negative_prompt) : NULL;
    if ((src->prompt && !dst->prompt) || (src->negative_prompt && !dst->negative_prompt)) {
        api_video_clear(dst);
        return AU_ENOMEM;
    }
    return 0;
}

int api_id_valid(const char *id) {
    size_t plen = strlen(API_ID_PREFIX);
    if (!id || strncmp(id, API_ID_PREFIX, plen) != 0 || strlen(id) != plen + API_ID_HEX)
        return 0;
    for (const char *c = id + plen; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}

void api_request_free(api_request *r) {
    free(r->prompt);
    free(r->negative_prompt);
    memset(r, 0, sizeof *r);
}

int api_parse_json_body(const char *body, size_t len, json_t **fields, api_error *e) {
    json_error_t jerr;
    *fields = NULL;
    if (len == 0)
        return api_errorf(e, 400, "invalid_json", NULL, "request body is empty; expected a JSON object");
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return api_errorf(e, 400, "invalid_json", NULL, "invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return api_errorf(e, 400, "invalid_json", NULL, "request body must be a JSON object");
    }
    *fields = root;
    return 0;
}

/* Number of code points in s, or -1 when s is not valid UTF-8. */
static long utf8_chars(const char *s) {
    long n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra;
        uint32_t cp;
        if (*p < 0x80) {
            extra = 0;
            cp = *p;
        } else if ((*p & 0xE0) == 0xC0) {
            extra = 1;
            cp = *p & 0x1F;
        } else if ((*p & 0xF0) == 0xE0) {
            extra = 2;
            cp = *p & 0x0F;
        } else if ((*p & 0xF8) == 0xF0) {
            extra = 3;
            cp = *p & 0x07;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (*p & 0x3F);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        n++;
    }
    return n;
}

/* The field's value, or NULL when absent or JSON null. */
static const json_t *field_get(const json_t *fields, const char *name) {
    const json_t *v = json_object_get(fields, name);
    return json_is_null(v) ? NULL : v;
}

static int field_string(const json_t *fields, const char *name, const char **out, api_error *e) {
    const json_t *v = field_get(fields, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return api_errorf(e, 400, "invalid_type", name, "%s must be a string", name);
    *out = json_string_value(v);
    return 0;
}

/* A text field with a length limit in characters; must be valid UTF-8. */
static int field_text(const json_t *fields, const char *name, long max_chars, const char **out,
                      api_error *e) {
    int rc = field_string(fields, name, out, e);
    if (rc || !*out)
        return rc;
    long n = utf8_chars(*out);
    if (n < 0)
        return api_errorf(e, 400, "invalid_value", name, "%s is not valid UTF-8", name);
    if (max_chars > 0 && n > max_chars)
        return api_errorf(e, 400, "invalid_value", name,
                          "%s is %ld characters long; this model accepts at most %ld", name, n, max_chars);
    return 0;
}

/* Strict decimal parse of a whole string (no spaces, no trailing garbage). */
static int parse_double_text(const char *s, double *out) {
    char *end;
    if (!*s || *s == ' ' || *s == '\t' || *s == '\n' || *s == '+')
        return -1;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

/* A number from a JSON number or a numeric string; *given = 0 when absent. */
static int field_double(const json_t *fields, const char *name, double *out, int *given, api_error *e) {
    const json_t *v = field_get(fields, name);
    *given = 0;
    if (!v)
        return 0;
    if (json_is_number(v)) {
        *out = json_number_value(v);
    } else if (!json_is_string(v) || parse_double_text(json_string_value(v), out) != 0) {
        return api_errorf(e, 400, "invalid_type", name, "%s must be a number", name);
    }
    if (!isfinite(*out))
        return api_errorf(e, 400, "invalid_value", name, "%s must be a finite number", name);
    *given = 1;
    return 0;
}

/* An integer in [lo, hi] from a JSON integer, an integral JSON real, or a string of digits. */
static int field_int(const json_t *fields, const char *name, int64_t lo, int64_t hi, int64_t *out, int *given,
                     api_error *e) {
    const json_t *v = field_get(fields, name);
    *given = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9.0e15) {
        *out = (int64_t)json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
            return api_errorf(e, 400, "invalid_type", name, "%s must be an integer", name);
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*end || errno == ERANGE)
            return api_errorf(e, 400, "invalid_type", name, "%s must be an integer in [%lld, %lld]", name,
                              (long long)lo, (long long)hi);
        *out = x;
    } else {
        return api_errorf(e, 400, "invalid_type", name, "%s must be an integer", name);
    }
    if (*out < lo || *out > hi)
        return api_errorf(e, 400, "invalid_value", name, "%s must be between %lld and %lld, got %lld", name,
                          (long long)lo, (long long)hi, (long long)*out);
    *given = 1;
    return 0;
}

/* Reject any field not in allowed[] (NULL-terminated), naming the first. */
static int check_known(const json_t *fields, const char *const *allowed, api_error *e) {
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)fields, key, value) {
        (void)value;
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (ok)
            continue;
        if (strcmp(key, "input_reference") == 0)
            return api_errorf(e, 400, "unsupported_parameter", key,
                              "input_reference (image to video) is not supported by this server");
        return api_errorf(e, 400, "unknown_parameter", key, "unknown parameter: %.48s", key);
    }
    return 0;
}

static int size_supported(const au_model_info *mi, long w, long h) {
    if (mi->n_sizes <= 0)
        return 1;
    for (int i = 0; i < mi->n_sizes && i < 16; i++)
        if (mi->sizes[i][0] == w && mi->sizes[i][1] == h)
            return 1;
    return 0;
}

/* "WIDTHxHEIGHT" -> width, height, checked against the model. */
static int parse_size(const json_t *fields, const au_model_info *mi, int *width, int *height, api_error *e) {
    const char *s;
    int rc = field_string(fields, "size", &s, e);
    if (rc || !s)
        return rc;
    char *end;
    if (!(*s >= '0' && *s <= '9'))
        goto bad;
    long w = strtol(s, &end, 10);
    if (*end != 'x' || !(end[1] >= '0' && end[1] <= '9'))
        goto bad;
    long h = strtol(end + 1, &end, 10);
    if (*end)
        goto bad;
    int mult = mi->size_multiple > 0 ? mi->size_multiple : 1;
    if (w <= 0 || h <= 0 || w > mi->max_width || h > mi->max_height)
        return api_errorf(e, 400, "invalid_value", "size",
                          "size %ldx%ld is outside this model's limits (at most %dx%d)", w, h, mi->max_width,
                          mi->max_height);
    if (w % mult || h % mult)
        return api_errorf(e, 400, "invalid_value", "size",
                          "width and height must be multiples of %d, got %ldx%ld", mult, w, h);
    if (!size_supported(mi, w, h))
        return api_errorf(e, 400, "invalid_value", "size", "size %ldx%ld is not one this model supports", w,
                          h);
    *width = (int)w;
    *height = (int)h;
    return 0;
bad:
    return api_errorf(e, 400, "invalid_value", "size", "size must be WIDTHxHEIGHT, e.g. \"%dx%d\"",
                      mi->default_width, mi->default_height);
}

static int dup_into(char **dst, const char *src, api_error *e) {
    *dst = strdup(src);
    return *dst ? 0 : api_errorf(e, 500, "out_of_memory", NULL, "out of memory");
}

static void request_init(api_request *r) {
    memset(r, 0, sizeof *r);
    /* The pipeline_params_init markers (pipeline.h): au_api does not link the engine. */
    r->params.guidance_scale = AU_UNSET_F;
    r->params.shift = AU_UNSET_F;
    r->params.seed = -1;
}

/* The prompt: required, non-blank, within the model's length limit. */
static int parse_prompt(const json_t *fields, const au_model_info *mi, api_request *r, api_error *e) {
    const char *prompt;
    int rc = field_text(fields, "prompt", mi->max_prompt_chars, &prompt, e);
    if (rc)
        return rc;
    if (!prompt)
        return api_errorf(e, 400, "missing_required_parameter", "prompt", "prompt is required");
    if (strspn(prompt, " \t\r\n") == strlen(prompt))
        return api_errorf(e, 400, "invalid_value", "prompt", "prompt must not be empty");
    if ((rc = dup_into(&r->prompt, prompt, e)))
        return rc;
    r->params.prompt = r->prompt;
    return 0;
}

static int frames_from_seconds(const au_model_info *mi, double seconds, int fps, int *frames, api_error *e) {
    double n = seconds * fps;
    double k = floor((n - 1.0) / 4.0 + 0.5);
    if (k < 0)
        k = 0;
    double f = 4.0 * k + 1.0;
    if (f > mi->max_frames)
        return api_errorf(e, 400, "invalid_value", "seconds",
                          "seconds=%g at %d fps is %.0f frames; this model makes at most %d (%.2f s)",
                          seconds, fps, f, mi->max_frames, (double)mi->max_frames / fps);
    *frames = (int)f;
    return 0;
}

int api_create_request(const json_t *fields, const au_model_info *mi, api_request *r, api_error *e) {
    static const char *const allowed[] = {
        "prompt",         "model", "seconds", "size", "negative_prompt", "seed", "steps",
        "guidance_scale", "shift", "sampler", "fps",  "frames",          NULL};
    int64_t iv;
    double dv;
    int given, rc;
    const char *s;
    request_init(r);
    if ((rc = check_known(fields, allowed, e)) || (rc = parse_prompt(fields, mi, r, e)))
        return rc;
    if ((rc = field_string(fields, "model", &s, e)))
        return rc;
    if (s && strcmp(s, mi->name) != 0)
        return api_errorf(e, 400, "model_not_found", "model",
                          "model \"%.64s\" is not loaded; this server runs \"%s\"", s, mi->name);
    if ((rc = field_text(fields, "negative_prompt", mi->max_prompt_chars, &s, e)))
        return rc;
    if (s) {
        if ((rc = dup_into(&r->negative_prompt, s, e)))
            return rc;
        r->params.negative_prompt = r->negative_prompt;
    }
    if ((rc = parse_size(fields, mi, &r->params.width, &r->params.height, e)))
        return rc;
    if ((rc = field_int(fields, "fps", 1, API_FPS_MAX, &iv, &given, e)))
        return rc;
    r->fps = given ? (int)iv : mi->default_fps;
    if ((rc = field_int(fields, "frames", 1, mi->max_frames, &iv, &given, e)))
        return rc;
    if (given && iv % 4 != 1)
        return api_errorf(e, 400, "invalid_value", "frames",
                          "frames must be of the form 4k+1 (1, 5, 9, ...), got %lld", (long long)iv);
    if (given)
        r->params.frames = (int)iv;
    int frames_given = given;
    if ((rc = field_double(fields, "seconds", &dv, &given, e)))
        return rc;
    if (given) {
        if (dv <= 0)
            return api_errorf(e, 400, "invalid_value", "seconds", "seconds must be positive, got %g", dv);
        int f = 0;
        if ((rc = frames_from_seconds(mi, dv, r->fps, &f, e)))
            return rc;
        if (!frames_given)
            r->params.frames = f;
        const json_t *sv = field_get(fields, "seconds");
        if (json_is_string(sv))
            snprintf(r->seconds, sizeof r->seconds, "%s", json_string_value(sv));
        else
            snprintf(r->seconds, sizeof r->seconds, "%g", dv);
    }
    if ((rc = field_int(fields, "steps", 1, mi->max_steps, &iv, &given, e)))
        return rc;
    if (given)
        r->params.steps = (int)iv;
    if ((rc = field_double(fields, "guidance_scale", &dv, &given, e)))
        return rc;
    if (given && (dv < 0 || dv > API_GUIDANCE_MAX))
        return api_errorf(e, 400, "invalid_value", "guidance_scale",
                          "guidance_scale must be between 0 and %g, got %g", API_GUIDANCE_MAX, dv);
    if (given)
        r->params.guidance_scale = (float)dv;
    if ((rc = field_double(fields, "shift", &dv, &given, e)))
        return rc;
    if (given && (dv <= 0 || dv > API_SHIFT_MAX))
        return api_errorf(e, 400, "invalid_value", "shift",
                          "shift must be greater than 0 and at most %g, got %g", API_SHIFT_MAX, dv);
    if (given)
        r->params.shift = (float)dv;
    if ((rc = field_string(fields, "sampler", &s, e)))
        return rc;
    if (s && strcmp(s, "unipc") != 0 && strcmp(s, "euler") != 0)
        return api_errorf(e, 400, "invalid_value", "sampler",
                          "sampler must be \"unipc\" or \"euler\", got \"%.32s\"", s);
    r->params.sampler = s ? (strcmp(s, "unipc") == 0 ? "unipc" : "euler") : NULL;
    if ((rc = field_int(fields, "seed", 0, SEED_MAX, &iv, &given, e)))
        return rc;
    if (given)
        r->params.seed = iv;
    return 0;
}

int api_remix_request(const json_t *fields, const au_model_info *mi, const api_video *src, api_request *r,
                      api_error *e) {
    static const char *const allowed[] = {"prompt", NULL};
    int rc;
    request_init(r);
    if ((rc = check_known(fields, allowed, e)) || (rc = parse_prompt(fields, mi, r, e)))
        return rc;
    if (src->negative_prompt) {
        if ((rc = dup_into(&r->negative_prompt, src->negative_prompt, e)))
            return rc;
        r->params.negative_prompt = r->negative_prompt;
    }
    r->params.width = src->width;
    r->params.height = src->height;
    r->params.frames = src->frames;
    r->params.steps = src->steps;
    r->params.guidance_scale = (float)src->guidance_scale;
    r->params.shift = (float)src->shift;
    r->params.sampler = strcmp(src->sampler, "euler") == 0 ? "euler" : "unipc";
    r->params.seed = src->seed;
    r->fps = src->fps;
    snprintf(r->seconds, sizeof r->seconds, "%s", src->seconds);
    snprintf(r->remixed_from, sizeof r->remixed_from, "%s", src->id);
    return 0;
}

int api_video_from_request(const api_request *r, const au_gen_params *resolved, const char *model,
                           const char *id, int64_t created_at, api_video *out, au_err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->created_at = created_at;
    out->status = API_QUEUED;
    snprintf(out->model, sizeof out->model, "%s", model);
    out->prompt = strdup(r->prompt);
    out->negative_prompt = r->negative_prompt ? strdup(r->negative_prompt) : NULL;
    if (!out->prompt || (r->negative_prompt && !out->negative_prompt)) {
        api_video_clear(out);
        return au_errf(err, AU_ENOMEM, "video %s: out of memory", id);
    }
    out->width = resolved->width;
    out->height = resolved->height;
    out->frames = resolved->frames;
    out->fps = r->fps;
    out->steps = resolved->steps;
    out->guidance_scale = resolved->guidance_scale;
    out->shift = resolved->shift;
    snprintf(out->sampler, sizeof out->sampler, "%s", resolved->sampler ? resolved->sampler : "");
    out->seed = resolved->seed;
    if (r->seconds[0])
        snprintf(out->seconds, sizeof out->seconds, "%s", r->seconds);
    else
        snprintf(out->seconds, sizeof out->seconds, "%g", (double)resolved->frames / r->fps);
    snprintf(out->remixed_from, sizeof out->remixed_from, "%s", r->remixed_from);
    return 0;
}

static json_t *time_or_null(int64_t t) {
    return t ? json_integer(t) : json_null();
}

static json_t *str_or_null(const char *s) {
    return s && s[0] ? json_string(s) : json_null();
}

json_t *api_video_json(const api_video *v) {
    json_t *o = json_object();
    char size[32];
    if (!o)
        return NULL;
    snprintf(size, sizeof size, "%dx%d", v->width, v->height);
    json_object_set_new(o, "id", json_string(v->id));
    json_object_set_new(o, "object", json_string("video"));
    json_object_set_new(o, "created_at", json_integer(v->created_at));
    json_object_set_new(o, "status", json_string(api_status_name(v->status)));
    json_object_set_new(o, "progress", json_integer(v->progress));
    json_object_set_new(o, "model", json_string(v->model));
    json_object_set_new(o, "prompt", str_or_null(v->prompt));
    json_object_set_new(o, "seconds", json_string(v->seconds));
    json_object_set_new(o, "size", json_string(size));
    json_object_set_new(o, "completed_at", time_or_null(v->completed_at));
    json_object_set_new(o, "expires_at", time_or_null(v->expires_at));
    if (v->status == API_FAILED && v->error_code[0]) { /* a retried attempt's error stays hidden */
        json_t *err = json_object();
        json_object_set_new(err, "code", json_string(v->error_code));
        json_object_set_new(err, "message", json_string(v->error_message));
        json_object_set_new(o, "error", err);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    json_object_set_new(o, "remixed_from_video_id", str_or_null(v->remixed_from));
    json_object_set_new(o, "negative_prompt", str_or_null(v->negative_prompt));
    json_object_set_new(o, "seed", json_integer(v->seed));
    json_object_set_new(o, "steps", json_integer(v->steps));
    json_object_set_new(o, "guidance_scale", json_real(v->guidance_scale));
    json_object_set_new(o, "shift", json_real(v->shift));
    json_object_set_new(o, "sampler", json_string(v->sampler));
    json_object_set_new(o, "fps", json_integer(v->fps));
    json_object_set_new(o, "frames", json_integer(v->frames));
    return o;
}

/* Floats come from the engine's float32 parameters: 7 significant digits print them
 * as given ("5.1", not "5.0999999046325684"). */
static char *dump_owned(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(o);
    return s;
}

char *api_video_render(const api_video *v) {
    return dump_owned(api_video_json(v));
}

char *api_list_render(const api_video *items, int n, int has_more) {
    json_t *o = json_object(), *data = json_array();
    if (!o || !data) {
        json_decref(o);
        json_decref(data);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(data, api_video_json(&items[i]));
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    json_object_set_new(o, "first_id", n ? json_string(items[0].id) : json_null());
    json_object_set_new(o, "last_id", n ? json_string(items[n - 1].id) : json_null());
    json_object_set_new(o, "has_more", json_boolean(has_more));
    return dump_owned(o);
}

char *api_deleted_render(const char *id) {
    return dump_owned(json_pack("{s:s, s:s, s:b}", "id", id, "object", "video.deleted", "deleted", 1));
}

char *api_models_render(const au_model_info *mi, int64_t created_at) {
    json_t *sizes = json_array();
    for (int i = 0; i < mi->n_sizes && i < 16; i++) {
        char s[32];
        snprintf(s, sizeof s, "%dx%d", mi->sizes[i][0], mi->sizes[i][1]);
        json_array_append_new(sizes, json_string(s));
    }
    json_t *model = json_pack(
        "{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s}, s:{s:i, s:i, s:i, s:i, s:i, s:i, "
        "s:o}}",
        "id", mi->name, "object", "model", "created", (json_int_t)created_at, "owned_by", "auteur",
        "defaults", "width", mi->default_width, "height", mi->default_height, "frames", mi->default_frames,
        "fps", mi->default_fps, "steps", mi->default_steps, "guidance_scale", (double)mi->default_guidance,
        "shift", (double)mi->default_shift, "sampler", mi->default_sampler, "limits", "max_width",
        mi->max_width, "max_height", mi->max_height, "max_frames", mi->max_frames, "max_steps", mi->max_steps,
        "max_prompt_chars", mi->max_prompt_chars, "size_multiple", mi->size_multiple, "sizes", sizes);
    if (!model)
        return NULL;
    return dump_owned(json_pack("{s:s, s:[o]}", "object", "list", "data", model));
}
