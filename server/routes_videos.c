/* routes_videos.c - the /v1/videos handlers (routes.h).
 *
 * Create and remix validate the request (api/video.c) and then pipeline_resolve_params,
 * store the row and wake the dispatcher; nothing here waits for generation. Ids from the
 * path are only ever used after api_id_valid, so no request can name a file outside
 * DATA/videos. Content is served from an open file descriptor with Range support:
 * ETag "<id>-<size>" (a video's files never change), If-None-Match -> 304, If-Range.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/multipart.h"
#include "range.h"
#include "routes.h"

#define LIST_DEFAULT 20
#define LIST_MAX 100

static int reply_status(http_req *r, const au_err *err, const char *param) {
    api_error e;
    api_error_from_status(&e, err, param);
    return http_reply_error(r, &e);
}

static int no_engine(http_req *r) {
    api_error e;
    api_errorf(&e, 503, "engine_unavailable", NULL, "no engine is loaded: %s", r->app->model_error);
    return http_reply_error(r, &e);
}

/* The {id} of the path as a stored video: 404 for anything that is not a video id. */
static int load_video(http_req *r, api_video *v) {
    au_err err;
    if (r->id_too_long || !api_id_valid(r->id)) {
        api_error e;
        api_errorf(&e, 404, "video_not_found", "video_id", "no video with id %.64s%s", r->id,
                   r->id_too_long ? "..." : "");
        http_reply_error(r, &e);
        return -1;
    }
    if (store_get(r->app->st, r->id, v, &err) != 0) {
        if (err.code == AU_ENOTFOUND) {
            api_error e;
            api_errorf(&e, 404, "video_not_found", "video_id", "no video with id %s", r->id);
            http_reply_error(r, &e);
        } else {
            reply_status(r, &err, NULL);
        }
        return -1;
    }
    return 0;
}

/* The request body as JSON fields, from either content type. */
static int body_fields(http_req *r, json_t **fields, api_error *e) {
    const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0)
        return api_parse_multipart(ct, r->body ? r->body : "", r->body_len, fields, e);
    return api_parse_json_body(r->body ? r->body : "", r->body_len, fields, e);
}

/* Resolve, store and announce a validated request; replies with the new video. */
static int enqueue(http_req *r, api_request *req) {
    app *a = r->app;
    au_err err;
    api_error e;
    au_gen_params params = req->params;
    if (pipeline_resolve_params(a->pipe, &params, &err) != 0) {
        api_error_from_resolve(&e, &err);
        return http_reply_error(r, &e);
    }
    char id[API_ID_SIZE];
    api_video v;
    if (store_new_id(id, &err) != 0 ||
        api_video_from_request(req, &params, a->mi->name, id, (int64_t)time(NULL), &v, &err) != 0)
        return reply_status(r, &err, NULL);
    int rc = store_insert(a->st, &v, a->cfg->max_queue, &err);
    if (rc != 0) {
        api_video_clear(&v);
        return reply_status(r, &err, NULL);
    }
    dispatch_notify(a->disp);
    int ok = http_reply_json(r, 200, api_video_render(&v));
    api_video_clear(&v);
    return ok;
}

int routes_create_video(http_req *r) {
    if (!r->app->pipe)
        return no_engine(r);
    json_t *fields;
    api_error e;
    api_request req;
    if (body_fields(r, &fields, &e) != 0)
        return http_reply_error(r, &e);
    int rc = api_create_request(fields, r->app->mi, &req, &e);
    json_decref(fields);
    int ok = rc ? http_reply_error(r, &e) : enqueue(r, &req);
    api_request_free(&req);
    return ok;
}

int routes_remix_video(http_req *r) {
    api_video src;
    if (load_video(r, &src) != 0)
        return MHD_YES;
    if (!r->app->pipe) {
        api_video_clear(&src);
        return no_engine(r);
    }
    json_t *fields;
    api_error e;
    api_request req;
    int ok;
    if (body_fields(r, &fields, &e) != 0) {
        ok = http_reply_error(r, &e);
    } else {
        int rc = api_remix_request(fields, r->app->mi, &src, &req, &e);
        json_decref(fields);
        ok = rc ? http_reply_error(r, &e) : enqueue(r, &req);
        api_request_free(&req);
    }
    api_video_clear(&src);
    return ok;
}

int routes_get_video(http_req *r) {
    api_video v;
    if (load_video(r, &v) != 0)
        return MHD_YES;
    int ok = http_reply_json(r, 200, api_video_render(&v));
    api_video_clear(&v);
    return ok;
}

int routes_delete_video(http_req *r) {
    api_video v;
    au_err err;
    if (r->id_too_long || !api_id_valid(r->id) || store_delete(r->app->st, r->id, &v, &err) != 0) {
        if (!r->id_too_long && api_id_valid(r->id) && err.code != AU_ENOTFOUND)
            return reply_status(r, &err, NULL);
        api_error e;
        api_errorf(&e, 404, "video_not_found", "video_id", "no video with id %.64s", r->id);
        return http_reply_error(r, &e);
    }
    /* the row is gone: a running job stops at its next step and removes its own files */
    if (v.status == API_IN_PROGRESS && r->app->disp)
        dispatch_cancel(r->app->disp, v.id);
    dispatch_remove_files(r->app->videos_dir, v.id);
    int ok = http_reply_json(r, 200, api_deleted_render(v.id));
    api_video_clear(&v);
    return ok;
}

/* Parse limit/order/after; 0 or a queued 400. */
static int list_params(http_req *r, int *limit, int *descending, const char **after) {
    api_error e;
    const char *s = http_query(r, "limit");
    *limit = LIST_DEFAULT;
    if (s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < 1 || v > LIST_MAX) {
            api_errorf(&e, 400, "invalid_value", "limit", "limit must be an integer from 1 to %d", LIST_MAX);
            http_reply_error(r, &e);
            return -1;
        }
        *limit = (int)v;
    }
    s = http_query(r, "order");
    *descending = 1;
    if (s && strcmp(s, "asc") != 0 && strcmp(s, "desc") != 0) {
        api_errorf(&e, 400, "invalid_value", "order", "order must be \"asc\" or \"desc\"");
        http_reply_error(r, &e);
        return -1;
    }
    if (s)
        *descending = strcmp(s, "desc") == 0;
    *after = http_query(r, "after");
    if (*after && !api_id_valid(*after)) {
        api_errorf(&e, 400, "invalid_value", "after", "after must be a video id");
        http_reply_error(r, &e);
        return -1;
    }
    return 0;
}

int routes_list_videos(http_req *r) {
    int limit, descending, n = 0, has_more = 0;
    const char *after;
    au_err err;
    if (list_params(r, &limit, &descending, &after) != 0)
        return MHD_YES;
    api_video *items = calloc((size_t)limit, sizeof *items);
    if (!items) {
        au_errf(&err, AU_ENOMEM, "listing videos: out of memory");
        return reply_status(r, &err, NULL);
    }
    int ok;
    if (store_list(r->app->st, after, limit, descending, items, &n, &has_more, &err) != 0) {
        api_error e;
        if (err.code == AU_ENOTFOUND)
            api_errorf(&e, 400, "invalid_value", "after", "%s", err.msg);
        else
            api_error_from_status(&e, &err, NULL);
        ok = http_reply_error(r, &e);
    } else {
        ok = http_reply_json(r, 200, api_list_render(items, n, has_more));
    }
    for (int i = 0; i < n; i++)
        api_video_clear(&items[i]);
    free(items);
    return ok;
}

/* Does the request's If-None-Match / If-Range list contain etag (or "*")? */
static int etag_listed(const char *header, const char *etag) {
    if (!header)
        return 0;
    if (strcmp(header, "*") == 0)
        return 1;
    size_t n = strlen(etag);
    for (const char *p = header; (p = strstr(p, etag)); p += n)
        if ((p == header || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
    return 0;
}

int routes_video_content(http_req *r) {
    api_video v;
    api_error e;
    if (load_video(r, &v) != 0)
        return MHD_YES;
    const char *variant = http_query(r, "variant");
    int thumb = 0;
    if (variant && strcmp(variant, "thumbnail") == 0) {
        thumb = 1;
    } else if (variant && strcmp(variant, "video") != 0) {
        api_video_clear(&v);
        api_errorf(&e, 400, "invalid_value", "variant", "variant must be \"video\" or \"thumbnail\"%s",
                   strcmp(variant, "spritesheet") == 0 ? " (spritesheets are not made by this server)" : "");
        return http_reply_error(r, &e);
    }
    if (v.status != API_COMPLETED) {
        api_errorf(&e, 409, "video_not_ready", "video_id",
                   "video %s is %s; content exists once it is completed", v.id, api_status_name(v.status));
        api_video_clear(&v);
        return http_reply_error(r, &e);
    }
    char path[4200];
    if (thumb)
        dispatch_thumbnail_path(r->app->videos_dir, v.id, path, sizeof path);
    else
        dispatch_video_path(r->app->videos_dir, v.id, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat stt;
    if (fd < 0 || fstat(fd, &stt) != 0) {
        if (fd >= 0)
            close(fd);
        api_errorf(&e, 500, "content_missing", NULL, "video %s is completed but its %s file is missing", v.id,
                   thumb ? "thumbnail" : "video");
        api_video_clear(&v);
        return http_reply_error(r, &e);
    }
    uint64_t size = (uint64_t)stt.st_size;
    char etag[API_ID_SIZE + 48], disposition[API_ID_SIZE + 64], content_range[96];
    snprintf(etag, sizeof etag, "\"%s-%s%" PRIu64 "\"", v.id, thumb ? "t" : "", size);
    snprintf(disposition, sizeof disposition, "inline; filename=\"%s.%s\"", v.id, thumb ? "jpg" : "mp4");
    const char *ctype = thumb ? "image/jpeg" : "video/mp4";
    api_video_clear(&v);
    if (etag_listed(http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        close(fd);
        const char *h[] = {MHD_HTTP_HEADER_ETAG, etag, NULL};
        return http_reply_empty(r, 304, h);
    }
    byte_range br;
    range_result rr = RANGE_NONE;
    const char *if_range = http_header(r, MHD_HTTP_HEADER_IF_RANGE);
    if (!if_range || strcmp(if_range, etag) == 0)
        rr = range_parse(http_header(r, MHD_HTTP_HEADER_RANGE), size, &br);
    if (rr == RANGE_UNSATISFIABLE) {
        close(fd);
        snprintf(content_range, sizeof content_range, "bytes */%" PRIu64, size);
        api_errorf(&e, 416, "range_not_satisfiable", NULL,
                   "the Range header does not select any of the %" PRIu64 " bytes", size);
        const char *h[] = {MHD_HTTP_HEADER_CONTENT_RANGE, content_range, MHD_HTTP_HEADER_ACCEPT_RANGES,
                           "bytes", NULL};
        return http_reply_error_headers(r, &e, h);
    }
    const char *h[] = {MHD_HTTP_HEADER_ETAG,
                       etag,
                       MHD_HTTP_HEADER_ACCEPT_RANGES,
                       "bytes",
                       MHD_HTTP_HEADER_CONTENT_DISPOSITION,
                       disposition,
                       MHD_HTTP_HEADER_CONTENT_RANGE,
                       content_range,
                       NULL};
    if (rr == RANGE_OK) {
        snprintf(content_range, sizeof content_range, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, br.first,
                 br.last, size);
        return http_reply_fd(r, 206, fd, br.first, br.last - br.first + 1, ctype, h);
    }
    h[6] = NULL; /* no Content-Range on a full reply */
    return http_reply_fd(r, 200, fd, 0, size, ctype, h);
}
