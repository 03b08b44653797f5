/* cmd_health.c - `auteur health`: GET /health from a running server and print it, as the
 * table of health_table_render (the default on a terminal, or --table) or as the server's
 * JSON (the default otherwise, or --json, so scripts and container checks read JSON).
 * --refresh asks for a fresh hardware run first (GET /health?refresh=1: the server waits up
 * to HEALTH_REFRESH_WAIT_S for it, so the client waits at least REFRESH_TIMEOUT_S).
 *
 * A minimal HTTP/1.0 client over one socket (connect, send, read to EOF), so the command
 * works as a container health check with nothing else installed. Exit 0 when the server
 * answers 200 (READY or DEGRADED), 1 when it answers otherwise (the report is still printed)
 * or not at all.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "health.h"

#define MAX_REPLY (1 << 22)
#define REFRESH_TIMEOUT_S 30

static int connect_to(const char *host, int port, int timeout_s, au_err *err) {
    struct addrinfo hints, *res = NULL;
    char port_s[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port_s, sizeof port_s, "%d", port);
    /* a server bound to every address is reached on loopback */
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0)
        return au_errf(err, AU_EINVAL, "%s: %s", host, gai_strerror(gai));
    int fd = -1, saved = 0;
    struct timeval tv = {.tv_sec = timeout_s, .tv_usec = 0};
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return au_errf(err, AU_EIO, "cannot connect to %s port %d: %s", host, port, strerror(saved));
    return fd;
}

int cmd_health(int argc, char **argv) {
    health_config c;
    au_err err;
    int rc = config_health(&c, argc, argv, &err);
    if (rc == CFG_EXIT)
        return 0;
    if (rc == CFG_USAGE) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    int timeout = c.refresh && c.timeout_seconds < REFRESH_TIMEOUT_S ? REFRESH_TIMEOUT_S : c.timeout_seconds;
    int fd = connect_to(c.host, c.port, timeout, &err);
    if (fd < 0) {
        fprintf(stderr, "auteur health: %s\n", err.msg);
        return 1;
    }
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET /health%s HTTP/1.0\r\nHost: %s:%d\r\nAccept: application/json\r\n\r\n",
                 c.refresh ? "?refresh=1" : "", c.host, c.port);
    char *reply = malloc(MAX_REPLY + 1);
    size_t len = 0;
    int ok = reply && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    while (ok && len < MAX_REPLY) {
        ssize_t got = recv(fd, reply + len, MAX_REPLY - len, 0);
        if (got < 0)
            ok = 0;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (!ok) {
        fprintf(stderr, "auteur health: no reply from %s port %d: %s\n", c.host, c.port,
                reply ? strerror(errno) : "out of memory");
        free(reply);
        return 1;
    }
    reply[len] = '\0';
    int status = 0;
    char *body = strstr(reply, "\r\n\r\n");
    if (sscanf(reply, "HTTP/%*d.%*d %d", &status) != 1 || !body) {
        fprintf(stderr, "auteur health: %s port %d did not answer HTTP\n", c.host, c.port);
        free(reply);
        return 1;
    }
    body += 4;
    int table = c.table || (!c.json && isatty(STDOUT_FILENO));
    json_t *report = table ? json_loads(body, 0, NULL) : NULL;
    char *text =
        json_is_object(report) && json_object_get(report, "verdict") ? health_table_render(report) : NULL;
    if (table && !text)
        fprintf(stderr, "auteur health: the reply is not a health report; printing it as it came\n");
    printf("%s\n", text ? text : body);
    free(text);
    json_decref(report);
    free(reply);
    if (status != 200)
        fprintf(stderr, "auteur health: HTTP %d\n", status);
    return status == 200 ? 0 : 1;
}
