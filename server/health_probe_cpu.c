/* health_probe_cpu.c - the host facts of the /health report (health.h): hostname, CPU
 * architecture and model, cores, memory, OS and kernel, RDMA and network devices, and the free
 * space of the data directory.
 *
 * Sources: gethostname, uname, sysconf, /proc/cpuinfo ("model name", else "Model" on Arm
 * boards), /etc/os-release (PRETTY_NAME), statvfs. Network devices from sysfs: each
 * SYS/infiniband/<dev>/ports/<n>/{state,link_layer,rate} (the RDMA view, as ibstat shows it)
 * with the interface it drives from SYS/infiniband/<dev>/device/net/; each SYS/net/<if>/
 * {operstate,speed,mtu}, loopback left out. Entries are sorted by name.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "health.h"

/* Copy src into dst of cap bytes, cut to fit. */
static void set_str(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The first line of a small file, trailing whitespace removed; 0, or -1 when unreadable. */
static int read_line(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\t'))
        out[--n] = '\0';
    return 0;
}

static int read_int(const char *path, int fallback) {
    char buf[64], *end;
    if (read_line(path, buf, sizeof buf) != 0)
        return fallback;
    long v = strtol(buf, &end, 10);
    return end == buf ? fallback : (int)v;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Entries of dir (without "." and ".."), sorted; *names malloc'd (free with free_names).
 * -1 when dir cannot be opened (errno set). */
static int list_dir(const char *dir, char ***names, int *n) {
    DIR *d = opendir(dir);
    *names = NULL;
    *n = 0;
    if (!d)
        return -1;
    int cap = 0, oom = 0;
    struct dirent *e;
    while (!oom && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (*n == cap) {
            char **grown = realloc(*names, (size_t)(cap ? cap * 2 : 16) * sizeof *grown);
            if (!grown) {
                oom = 1;
                break;
            }
            cap = cap ? cap * 2 : 16;
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            oom = 1;
        else
            (*n)++;
    }
    closedir(d);
    if (oom) {
        free_names(*names, *n);
        *names = NULL;
        *n = 0;
        errno = ENOMEM;
        return -1;
    }
    if (*n > 1)
        qsort(*names, (size_t)*n, sizeof **names, cmp_names);
    return 0;
}

static void probe_rdma(health_host *h, const char *sys_class) {
    char dir[4096], path[4400];
    char **devs, **ports;
    int n_devs, n_ports;
    snprintf(dir, sizeof dir, "%s/infiniband", sys_class);
    if (list_dir(dir, &devs, &n_devs) != 0)
        return; /* no RDMA stack or device */
    for (int i = 0; i < n_devs && h->n_rdma < HEALTH_MAX_RDMA; i++) {
        health_rdma_dev *r = &h->rdma[h->n_rdma++];
        memset(r, 0, sizeof *r);
        set_str(r->name, sizeof r->name, devs[i]);
        char **nets;
        int n_nets;
        snprintf(path, sizeof path, "%s/%s/device/net", dir, devs[i]);
        if (list_dir(path, &nets, &n_nets) == 0) {
            if (n_nets > 0)
                set_str(r->netdev, sizeof r->netdev, nets[0]);
            free_names(nets, n_nets);
        }
        snprintf(path, sizeof path, "%s/%s/ports", dir, devs[i]);
        if (list_dir(path, &ports, &n_ports) != 0)
            continue;
        for (int p = 0; p < n_ports && r->n_ports < HEALTH_MAX_PORTS; p++) {
            health_rdma_port *port = &r->ports[r->n_ports++];
            char file[4600];
            port->port = atoi(ports[p]);
            snprintf(file, sizeof file, "%s/%s/ports/%s/state", dir, devs[i], ports[p]);
            if (read_line(file, port->state, sizeof port->state) != 0)
                snprintf(port->state, sizeof port->state, "unknown");
            snprintf(file, sizeof file, "%s/%s/ports/%s/link_layer", dir, devs[i], ports[p]);
            if (read_line(file, port->link_layer, sizeof port->link_layer) != 0)
                snprintf(port->link_layer, sizeof port->link_layer, "unknown");
            snprintf(file, sizeof file, "%s/%s/ports/%s/rate", dir, devs[i], ports[p]);
            if (read_line(file, port->rate, sizeof port->rate) != 0)
                snprintf(port->rate, sizeof port->rate, "unknown");
        }
        free_names(ports, n_ports);
    }
    free_names(devs, n_devs);
}

static int probe_net(health_host *h, const char *sys_class, au_err *err) {
    char dir[4096], path[4400];
    char **ifs;
    int n_ifs;
    snprintf(dir, sizeof dir, "%s/net", sys_class);
    if (list_dir(dir, &ifs, &n_ifs) != 0)
        return au_errf(err, AU_EIO, "%s: %s", dir, strerror(errno));
    for (int i = 0; i < n_ifs && h->n_netif < HEALTH_MAX_NETIF; i++) {
        if (strcmp(ifs[i], "lo") == 0)
            continue;
        health_netif *n = &h->netif[h->n_netif++];
        memset(n, 0, sizeof *n);
        set_str(n->name, sizeof n->name, ifs[i]);
        snprintf(path, sizeof path, "%s/%s/operstate", dir, ifs[i]);
        if (read_line(path, n->operstate, sizeof n->operstate) != 0)
            snprintf(n->operstate, sizeof n->operstate, "unknown");
        snprintf(path, sizeof path, "%s/%s/speed", dir, ifs[i]);
        n->speed_mbps = read_int(path, -1); /* the file errors (EINVAL) when the link is down */
        if (n->speed_mbps <= 0)
            n->speed_mbps = -1;
        snprintf(path, sizeof path, "%s/%s/mtu", dir, ifs[i]);
        n->mtu = read_int(path, 0);
    }
    free_names(ifs, n_ifs);
    return 0;
}

/* The value after "key<spaces>:" in /proc/cpuinfo's first matching line. */
static void cpu_model(char *out, size_t cap) {
    static const char *const keys[] = {"model name", "Model", "Hardware"};
    char line[512];
    out[0] = '\0';
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !out[0]; k++) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        if (!f)
            return;
        size_t klen = strlen(keys[k]);
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, keys[k], klen) != 0 || !strchr(line, ':'))
                continue;
            const char *p = line + klen;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ':')
                continue;
            for (p++; *p == ' '; p++) {
            }
            set_str(out, cap, p);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
        fclose(f);
    }
}

static void os_name(const struct utsname *u, char *out, size_t cap) {
    char line[512];
    FILE *f = fopen("/etc/os-release", "r");
    snprintf(out, cap, "%s", u->sysname);
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) != 0)
            continue;
        char *v = line + 12;
        v[strcspn(v, "\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v[n - 1] = '\0';
            v++;
        }
        set_str(out, cap, v);
        break;
    }
    fclose(f);
}

int health_probe_host(health_host *h, const char *sys_class, au_err *err) {
    struct utsname u;
    memset(h, 0, sizeof *h);
    if (gethostname(h->hostname, sizeof h->hostname - 1) != 0)
        return au_errf(err, AU_EIO, "gethostname: %s", strerror(errno));
    if (uname(&u) != 0)
        return au_errf(err, AU_EIO, "uname: %s", strerror(errno));
    snprintf(h->cpu_arch, sizeof h->cpu_arch, "%s", u.machine);
    snprintf(h->kernel, sizeof h->kernel, "%s", u.release);
    os_name(&u, h->os, sizeof h->os);
    cpu_model(h->cpu_model, sizeof h->cpu_model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    h->cpu_cores = cores > 0 ? (int)cores : 0;
    h->memory_total_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    probe_rdma(h, sys_class);
    return probe_net(h, sys_class, err);
}

int health_probe_disk(const char *dir, uint64_t *free_bytes, uint64_t *total_bytes, au_err *err) {
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return au_errf(err, AU_EIO, "statvfs %s: %s", dir, strerror(errno));
    *free_bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    *total_bytes = (uint64_t)st.f_blocks * (uint64_t)st.f_frsize;
    return 0;
}
