/* routes.h - the handlers behind the route table of http.c. Each reads the request through
 * http.h's accessors and queues one reply; the return value goes back to libmicrohttpd.
 *
 *   POST   /v1/videos                 routes_create_video     (routes_videos.c)
 *   GET    /v1/videos                 routes_list_videos
 *   GET    /v1/videos/{id}            routes_get_video
 *   DELETE /v1/videos/{id}            routes_delete_video
 *   GET    /v1/videos/{id}/content    routes_video_content
 *   POST   /v1/videos/{id}/remix      routes_remix_video
 *   GET    /v1/models                 routes_models           (routes_misc.c)
 *   GET    /health                    routes_health
 *   GET    /health/live               routes_health_live
 *   GET    /health/ready              routes_health_ready
 *   GET    /health/history            routes_health_history
 *   POST   /health/run                routes_health_run
 *   GET    /metrics                   routes_metrics
 */
#ifndef AU_ROUTES_H
#define AU_ROUTES_H

#include "http.h"

int routes_create_video(http_req *r);
int routes_list_videos(http_req *r);
int routes_get_video(http_req *r);
int routes_delete_video(http_req *r);
int routes_video_content(http_req *r);
int routes_remix_video(http_req *r);
int routes_models(http_req *r);
int routes_health(http_req *r);
int routes_health_live(http_req *r);
int routes_health_ready(http_req *r);
int routes_health_history(http_req *r);
int routes_health_run(http_req *r);
int routes_metrics(http_req *r);

/* The /health report as JSON (also used by tests); *healthy = 1 when every part is up. */
char *routes_health_report(app *a, int *healthy);

#endif
