/* video.h - the video object and the create/remix requests of the HTTP API.
 *
 * A create request arrives as a JSON object or as multipart/form-data (multipart.h turns
 * the latter into a JSON object of strings), so both go through one validator. Numeric
 * fields accept a JSON number or a string holding one ("4", "832x480" as OpenAI sends them).
 * Fields: prompt (required), model, seconds, size "WxH", and the extensions negative_prompt,
 * seed, steps, guidance_scale, shift, sampler, fps, frames. When frames is absent and seconds
 * is given, frames = seconds * fps rounded to the nearest 4k+1. Fields not given are left
 * unset (the pipeline_params_init markers: 0, NULL, AU_UNSET_F, seed -1) for
 * pipeline_resolve_params to fill with the model's defaults. Unknown fields are rejected.
 *
 * Video ids are "video_" + 32 lowercase hex digits (128 random bits); nothing else is an id.
 */
#ifndef AU_API_VIDEO_H
#define AU_API_VIDEO_H

#include <jansson.h>
#include <stdint.h>

#include "api/errors.h"
#include "pipeline.h"

#define API_ID_PREFIX "video_"
#define API_ID_HEX 32
#define API_ID_SIZE 48 /* buffer size for an id */
#define API_FPS_MAX 120
#define API_GUIDANCE_MAX 50.0
#define API_SHIFT_MAX 100.0

typedef enum api_status { API_QUEUED = 0, API_IN_PROGRESS, API_COMPLETED, API_FAILED } api_status;

const char *api_status_name(api_status s);
/* "queued" -> API_QUEUED ...; 0 or AU_EINVAL. */
int api_status_parse(const char *name, api_status *out);

/* A job as stored and as rendered. */
typedef struct api_video {
    char id[API_ID_SIZE];
    int64_t created_at;
    api_status status;
    int progress; /* 0..100 */
    char model[64];
    char *prompt;          /* owned */
    char *negative_prompt; /* owned; NULL = the model's default */
    char seconds[24];      /* as requested ("4"), else the duration frames / fps */
    int width, height, frames, fps, steps;
    double guidance_scale, shift;
    char sampler[16];
    int64_t seed;
    char remixed_from[API_ID_SIZE]; /* "" = not a remix */
    int attempts;
    int64_t completed_at, expires_at; /* 0 = not set, rendered as null */
    char error_code[48];              /* "" = no error */
    char error_message[512];
} api_video;

/* Free the owned strings and zero v. */
void api_video_clear(api_video *v);
/* Deep copy; 0 or AU_ENOMEM. */
int api_video_copy(api_video *dst, const api_video *src);

/* 1 when id has the exact form of a video id, else 0. */
int api_id_valid(const char *id);

/* A validated create or remix request, before the model's defaults are filled in. */
typedef struct api_request {
    au_gen_params params;  /* prompt / negative_prompt point at the strings below */
    char *prompt;          /* owned */
    char *negative_prompt; /* owned; NULL = not given */
    int fps;               /* given, else the model's default */
    char seconds[24];      /* "" when not given */
    char remixed_from[API_ID_SIZE];
} api_request;

void api_request_free(api_request *r);

/* Parse a JSON request body: it must be one JSON object (400 otherwise). *fields is a new
 * reference on success. Returns 0 or the HTTP status of the error in e. */
int api_parse_json_body(const char *body, size_t len, json_t **fields, api_error *e);

/* Validate the fields of POST /v1/videos against the model. 0 or the HTTP status (e->param
 * names the field). r must be freed with api_request_free either way. */
int api_create_request(const json_t *fields, const au_model_info *mi, api_request *r, api_error *e);

/* Validate the fields of POST /v1/videos/{id}/remix (only "prompt") and build a request
 * that repeats src's parameters and seed with the new prompt. */
int api_remix_request(const json_t *fields, const au_model_info *mi, const api_video *src, api_request *r,
                      api_error *e);

/* The row to store for a request once pipeline_resolve_params has filled `resolved`
 * (resolved->prompt/negative_prompt are not used: the request's own strings are kept, so a
 * default negative prompt stays NULL). 0 or AU_ENOMEM. */
int api_video_from_request(const api_request *r, const au_gen_params *resolved, const char *model,
                           const char *id, int64_t created_at, api_video *out, au_err *err);

/* Renderers: malloc'd JSON text, NULL only when out of memory. */
json_t *api_video_json(const api_video *v);
char *api_video_render(const api_video *v);
char *api_list_render(const api_video *items, int n, int has_more);
char *api_deleted_render(const char *id);
char *api_models_render(const au_model_info *mi, int64_t created_at);

#endif
