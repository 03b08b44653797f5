/* safetensors.c - memory-mapped safetensors reader, sharded index sets, atomic writer.
 *
 * Layout of a file: bytes [0,8) u64 little-endian N; bytes [8, 8+N) a JSON object
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}};
 * the data block starts at 8+N and offsets are relative to it.
 *
 * Everything in the header is checked before any tensor is exposed: N within the file
 * (and at most ST_MAX_HEADER), a JSON object without duplicate keys, known dtypes, at
 * most AU_MAX_DIMS non-negative dims whose product (times the dtype size) does not
 * overflow, end - begin == numel * dtype size, end within the data block, data aligned
 * to its element size (relative to the file start, which mmap aligns to a page), and no
 * two non-empty tensors sharing a byte. Gaps between tensors are allowed.
 *
 * A "*.index.json" ({"weight_map": {tensor: shard file}}) opens every shard named there
 * (relative to the index's folder) and presents the union; each mapped name must be in
 * the shard the map names, and a name may appear in one shard only.
 *
 * The writer orders tensors by decreasing element size (so every tensor stays aligned
 * without padding, as the reference writer does), pads the header with spaces to a
 * multiple of 8, writes to "<path>.tmp.<pid>", fsyncs, renames over <path> and fsyncs
 * the folder.
 */
#include "safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define ST_MAX_SHARDS 4096

typedef struct st_file {
    void *base;     /* mmap'ed file, or a malloc'ed copy (st_open_memory) */
    size_t size;
    int is_mapped;
} st_file;

typedef struct st_tensor {
    char *name;
    au_tensor t;
    int file;       /* index into files */
    uint64_t begin; /* byte range within the file */
    uint64_t end;
} st_tensor;

struct st_set {
    st_file *files;
    int n_files;
    st_tensor *tensors; /* in header order, shard after shard */
    int n_tensors;
    st_tensor **by_name; /* the tensors sorted by name */
    char **meta_keys;
    char **meta_vals;
    int n_meta;
};

/* ---------------------------------------------------------------- set helpers */

static void file_release(st_file *f) {
    if (!f->base)
        return;
    if (f->is_mapped)
        munmap(f->base, f->size);
    else
        free(f->base);
    f->base = NULL;
}

void st_close(st_set *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n_files; i++)
        file_release(&s->files[i]);
    for (int i = 0; i < s->n_tensors; i++)
        free(s->tensors[i].name);
    for (int i = 0; i < s->n_meta; i++) {
        free(s->meta_keys[i]);
        free(s->meta_vals[i]);
    }
    free(s->files);
    free(s->tensors);
    free(s->by_name);
    free(s->meta_keys);
    free(s->meta_vals);
    free(s);
}

static int set_add_file(st_set *s, st_file f, au_err *err) {
    st_file *grown = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *grown);
    if (!grown)
        return au_errf(err, AU_ENOMEM, "out of memory");
    s->files = grown;
    s->files[s->n_files++] = f;
    return 0;
}

static int set_add_meta(st_set *s, const char *key, const char *val, au_err *err) {
    for (int i = 0; i < s->n_meta; i++) {
        if (strcmp(s->meta_keys[i], key) == 0)
            return 0; /* first shard wins for repeated keys */
    }
    char **k = realloc(s->meta_keys, (size_t)(s->n_meta + 1) * sizeof *k);
    if (!k)
        return au_errf(err, AU_ENOMEM, "out of memory");
    s->meta_keys = k;
    char **v = realloc(s->meta_vals, (size_t)(s->n_meta + 1) * sizeof *v);
    if (!v)
        return au_errf(err, AU_ENOMEM, "out of memory");
    s->meta_vals = v;
    k[s->n_meta] = strdup(key);
    v[s->n_meta] = strdup(val);
    if (!k[s->n_meta] || !v[s->n_meta]) {
        free(k[s->n_meta]);
        free(v[s->n_meta]);
        return au_errf(err, AU_ENOMEM, "out of memory");
    }
    s->n_meta++;
    return 0;
}

static int cmp_range(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* Tensors [first, n_tensors) all come from one file: reject two that share a byte. */
static int check_overlaps(const st_set *s, int first, au_err *err) {
    int n = s->n_tensors - first;
    if (n < 2)
        return 0;
    st_tensor **order = malloc((size_t)n * sizeof *order);
    if (!order)
        return au_errf(err, AU_ENOMEM, "out of memory");
    int m = 0;
    for (int i = first; i < s->n_tensors; i++) {
        if (s->tensors[i].end > s->tensors[i].begin)
            order[m++] = &s->tensors[i];
    }
    qsort(order, (size_t)m, sizeof *order, cmp_range);
    int rc = 0;
    for (int i = 1; i < m; i++) {
        if (order[i]->begin < order[i - 1]->end) {
            rc = au_errf(err, AU_EFORMAT, "tensor %s: data [%llu,%llu) overlaps tensor %s [%llu,%llu)",
                         order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end,
                         order[i - 1]->name, (unsigned long long)order[i - 1]->begin,
                         (unsigned long long)order[i - 1]->end);
            break;
        }
    }
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- header parsing */

static int json_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_tensor(st_set *s, int file_index, const char *name, json_t *desc, const uint8_t *data,
                        uint64_t data_off, uint64_t data_len, au_err *err) {
    if (!json_is_object(desc))
        return au_errf(err, AU_EFORMAT, "tensor %s: header entry is not an object", name);
    json_t *jdtype = json_object_get(desc, "dtype"), *jshape = json_object_get(desc, "shape");
    json_t *joffs = json_object_get(desc, "data_offsets");
    if (!json_is_string(jdtype) || !json_is_array(jshape) || !json_is_array(joffs))
        return au_errf(err, AU_EFORMAT, "tensor %s: needs string dtype, array shape and array data_offsets", name);
    if (json_object_size(desc) != 3)
        return au_errf(err, AU_EFORMAT, "tensor %s: unexpected keys besides dtype, shape, data_offsets", name);
    au_dtype dt;
    if (au_dtype_from_name(json_string_value(jdtype), &dt) < 0)
        return au_errf(err, AU_EFORMAT, "tensor %s: unsupported dtype \"%s\"", name, json_string_value(jdtype));
    size_t ndim = json_array_size(jshape);
    if (ndim > AU_MAX_DIMS)
        return au_errf(err, AU_EFORMAT, "tensor %s: %zu dims, at most %d supported", name, ndim, AU_MAX_DIMS);
    au_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = (int)ndim;
    uint64_t nbytes = au_dtype_size(dt);
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d;
        if (json_uint(json_array_get(jshape, i), &d) < 0)
            return au_errf(err, AU_EFORMAT, "tensor %s: shape[%zu] is not a non-negative integer", name, i);
        if (d != 0 && nbytes > UINT64_MAX / 2 / d)
            return au_errf(err, AU_EFORMAT, "tensor %s: shape too large", name);
        nbytes *= d;
        t.shape[i] = (int64_t)d;
    }
    uint64_t begin, end;
    if (json_array_size(joffs) != 2 || json_uint(json_array_get(joffs, 0), &begin) < 0 ||
        json_uint(json_array_get(joffs, 1), &end) < 0)
        return au_errf(err, AU_EFORMAT, "tensor %s: data_offsets must be two non-negative integers", name);
    if (begin > end || end > data_len)
        return au_errf(err, AU_EFORMAT, "tensor %s: data_offsets [%llu,%llu) outside the %llu-byte data block", name,
                       (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != nbytes)
        return au_errf(err, AU_EFORMAT, "tensor %s: %llu bytes of data for a shape needing %llu", name,
                       (unsigned long long)(end - begin), (unsigned long long)nbytes);
    if (nbytes > 0 && (data_off + begin) % au_dtype_size(dt) != 0)
        return au_errf(err, AU_EFORMAT, "tensor %s: data at file offset %llu is not aligned to its %zu-byte elements",
                       name, (unsigned long long)(data_off + begin), au_dtype_size(dt));
    t.data = (void *)(data + begin);
    st_tensor *grown = realloc(s->tensors, (size_t)(s->n_tensors + 1) * sizeof *grown);
    if (!grown)
        return au_errf(err, AU_ENOMEM, "out of memory");
    s->tensors = grown;
    st_tensor *e = &s->tensors[s->n_tensors];
    e->name = strdup(name);
    if (!e->name)
        return au_errf(err, AU_ENOMEM, "out of memory");
    e->t = t;
    e->file = file_index;
    e->begin = begin;
    e->end = end;
    s->n_tensors++;
    return 0;
}

/* Validate and index the file just added as s->files[file_index]. */
static int parse_file(st_set *s, int file_index, au_err *err) {
    const uint8_t *bytes = s->files[file_index].base;
    uint64_t size = s->files[file_index].size;
    if (size < 8)
        return au_errf(err, AU_EFORMAT, "file of %llu bytes is shorter than the 8-byte header length",
                       (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | bytes[i];
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8)
        return au_errf(err, AU_EFORMAT, "header length %llu does not fit the %llu-byte file", (unsigned long long)n,
                       (unsigned long long)size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return au_errf(err, AU_EFORMAT, "header JSON: %s (at byte %d)", jerr.text, jerr.position);
    int rc = 0;
    int first = s->n_tensors;
    if (!json_is_object(root)) {
        rc = au_errf(err, AU_EFORMAT, "header JSON is not an object");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = au_errf(err, AU_EFORMAT, "__metadata__ is not an object");
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = au_errf(err, AU_EFORMAT, "__metadata__ entry %s is not a string", mk);
                    goto done;
                }
                if ((rc = set_add_meta(s, mk, json_string_value(mv), err)) < 0)
                    goto done;
            }
            continue;
        }
        rc = parse_tensor(s, file_index, key, val, bytes + 8 + n, 8 + n, size - 8 - n, err);
        if (rc < 0)
            goto done;
    }
    rc = check_overlaps(s, first, err);
done:
    json_decref(root);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* Sort for st_get; a name in two shards is an error. */
static int build_index(st_set *s, au_err *err) {
    s->by_name = malloc((size_t)(s->n_tensors ? s->n_tensors : 1) * sizeof *s->by_name);
    if (!s->by_name)
        return au_errf(err, AU_ENOMEM, "out of memory");
    for (int i = 0; i < s->n_tensors; i++)
        s->by_name[i] = &s->tensors[i];
    qsort(s->by_name, (size_t)s->n_tensors, sizeof *s->by_name, cmp_name);
    for (int i = 1; i < s->n_tensors; i++) {
        if (strcmp(s->by_name[i - 1]->name, s->by_name[i]->name) == 0)
            return au_errf(err, AU_EFORMAT, "tensor %s: appears in two shards", s->by_name[i]->name);
    }
    return 0;
}

static const st_tensor *find_tensor(const st_set *s, const char *name) {
    int lo = 0, hi = s->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s->by_name[mid]->name, name);
        if (c == 0)
            return s->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---------------------------------------------------------------- opening */

static int map_file(const char *path, st_file *out, au_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return au_errf(err, errno == ENOENT ? AU_ENOTFOUND : AU_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return au_errf(err, AU_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 8) {
        close(fd);
        return au_errf(err, AU_EFORMAT, "%s: not a safetensors file (%lld bytes)", path, (long long)st.st_size);
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED)
        return au_errf(err, AU_EIO, "%s: mmap: %s", path, strerror(e));
    out->base = base;
    out->size = (size_t)st.st_size;
    out->is_mapped = 1;
    return 0;
}

static int set_new(st_set **out, au_err *err) {
    *out = calloc(1, sizeof **out);
    return *out ? 0 : au_errf(err, AU_ENOMEM, "out of memory");
}

static int open_one(st_set *s, const char *path, au_err *err) {
    st_file f = {0};
    int rc = map_file(path, &f, err);
    if (rc < 0)
        return rc;
    if ((rc = set_add_file(s, f, err)) < 0) {
        file_release(&f);
        return rc;
    }
    if ((rc = parse_file(s, s->n_files - 1, err)) < 0)
        return au_err_prefix(err, "%s", path);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int open_index(st_set *s, const char *path, au_err *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return au_errf(err, AU_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    int rc = 0;
    char **shards = NULL;
    int n_shards = 0;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        rc = au_errf(err, AU_EFORMAT, "%s: no \"weight_map\" object", path);
        goto done;
    }
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    const char *name;
    json_t *file;
    /* Open each distinct shard once, in order of first mention. */
    json_object_foreach(map, name, file) {
        const char *fname = json_string_value(file);
        if (!fname || !fname[0] || strchr(fname, '/')) {
            rc = au_errf(err, AU_EFORMAT, "%s: tensor %s: shard must be a file name in the index's folder", path, name);
            goto done;
        }
        int known = 0;
        for (int i = 0; i < n_shards && !known; i++)
            known = strcmp(shards[i], fname) == 0;
        if (known)
            continue;
        if (n_shards >= ST_MAX_SHARDS) {
            rc = au_errf(err, AU_EFORMAT, "%s: more than %d shards", path, ST_MAX_SHARDS);
            goto done;
        }
        char **grown = realloc(shards, (size_t)(n_shards + 1) * sizeof *grown);
        if (!grown) {
            rc = au_errf(err, AU_ENOMEM, "out of memory");
            goto done;
        }
        shards = grown;
        shards[n_shards] = strdup(fname);
        if (!shards[n_shards]) {
            rc = au_errf(err, AU_ENOMEM, "out of memory");
            goto done;
        }
        n_shards++;
        char shard_path[4096];
        if (snprintf(shard_path, sizeof shard_path, "%.*s%s", dir_len, path, fname) >= (int)sizeof shard_path) {
            rc = au_errf(err, AU_EINVAL, "%s: shard path too long", path);
            goto done;
        }
        if ((rc = open_one(s, shard_path, err)) < 0)
            goto done;
    }
    /* Every mapped tensor must be where the map says (shard i is file i). */
    if ((rc = build_index(s, err)) < 0)
        goto done;
    json_object_foreach(map, name, file) {
        const st_tensor *t = find_tensor(s, name);
        if (!t || strcmp(shards[t->file], json_string_value(file)) != 0) {
            rc = au_errf(err, AU_EFORMAT, "%s: tensor %s is mapped to %s but not in it", path, name,
                         json_string_value(file));
            goto done;
        }
    }
done:
    for (int i = 0; i < n_shards; i++)
        free(shards[i]);
    free(shards);
    json_decref(root);
    return rc;
}

int st_open(st_set **out, const char *path, au_err *err) {
    *out = NULL;
    st_set *s;
    int rc = set_new(&s, err);
    if (rc < 0)
        return rc;
    if (ends_with(path, ".index.json"))
        rc = open_index(s, path, err);
    else if ((rc = open_one(s, path, err)) == 0)
        rc = build_index(s, err);
    if (rc < 0) {
        st_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int st_open_memory(st_set **out, const void *bytes, size_t n_bytes, au_err *err) {
    *out = NULL;
    st_set *s;
    int rc = set_new(&s, err);
    if (rc < 0)
        return rc;
    st_file f = {malloc(n_bytes ? n_bytes : 1), n_bytes, 0};
    if (!f.base) {
        st_close(s);
        return au_errf(err, AU_ENOMEM, "out of memory for a %zu-byte image", n_bytes);
    }
    if (n_bytes)
        memcpy(f.base, bytes, n_bytes);
    if ((rc = set_add_file(s, f, err)) < 0) {
        file_release(&f);
        st_close(s);
        return rc;
    }
    if ((rc = parse_file(s, 0, err)) < 0 || (rc = build_index(s, err)) < 0) {
        st_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------- queries */

const au_tensor *st_get(const st_set *s, const char *name) {
    const st_tensor *t = find_tensor(s, name);
    return t ? &t->t : NULL;
}

int st_count(const st_set *s) { return s->n_tensors; }

const char *st_name_at(const st_set *s, int i) {
    return i >= 0 && i < s->n_tensors ? s->tensors[i].name : NULL;
}

const char *st_metadata(const st_set *s, const char *key) {
    for (int i = 0; i < s->n_meta; i++) {
        if (strcmp(s->meta_keys[i], key) == 0)
            return s->meta_vals[i];
    }
    return NULL;
}

/* ---------------------------------------------------------------- writer */

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct st_write_item {
    const st_entry *e;
    int index;
} st_write_item;

static char *build_header(const st_write_item *order, int n, const char *const *metadata,
                          size_t *header_len, au_err *err) {
    json_t *root = json_object();
    if (!root) {
        au_errf(err, AU_ENOMEM, "out of memory");
        return NULL;
    }
    int ok = 1;
    if (metadata && metadata[0]) {
        json_t *meta = json_object();
        ok = meta && json_object_set_new(root, "__metadata__", meta) == 0;
        for (int i = 0; ok && metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                json_decref(root);
                au_errf(err, AU_EINVAL, "metadata key %s has no value", metadata[i]);
                return NULL;
            }
            ok = json_object_set_new(meta, metadata[i], json_string(metadata[i + 1])) == 0;
        }
    }
    uint64_t offset = 0;
    for (int k = 0; ok && k < n; k++) {
        const au_tensor *t = &order[k].e->tensor;
        char dtype[16];
        snprintf(dtype, sizeof dtype, "%s", au_dtype_name(t->dtype));
        for (char *c = dtype; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            ok = ok && json_array_append_new(shape, json_integer(t->shape[d])) == 0;
        uint64_t bytes = au_nbytes(t);
        json_t *desc = json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype, "shape", shape, "data_offsets",
                                 (json_int_t)offset, (json_int_t)(offset + bytes));
        ok = ok && desc && json_object_set_new(root, order[k].e->name, desc) == 0;
        offset += bytes;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text) {
        au_errf(err, AU_ENOMEM, "out of memory building the header");
        return NULL;
    }
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        au_errf(err, AU_ENOMEM, "out of memory");
        return NULL;
    }
    memset(out + len, ' ', padded - len);
    out[padded] = '\0';
    *header_len = padded;
    return out;
}

static int check_entries(const st_entry *entries, int n, au_err *err) {
    for (int i = 0; i < n; i++) {
        const au_tensor *t = &entries[i].tensor;
        const char *name = entries[i].name;
        if (!name || !name[0] || strcmp(name, "__metadata__") == 0)
            return au_errf(err, AU_EINVAL, "entry %d: invalid tensor name", i);
        if ((unsigned)t->dtype >= AU_DTYPE_COUNT || t->ndim < 0 || t->ndim > AU_MAX_DIMS)
            return au_errf(err, AU_EINVAL, "tensor %s: invalid dtype or rank", name);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                return au_errf(err, AU_EINVAL, "tensor %s: negative dim", name);
        }
        if (!t->data && au_nbytes(t) > 0)
            return au_errf(err, AU_EINVAL, "tensor %s: no data", name);
        if (t->scale)
            return au_errf(err, AU_EINVAL, "tensor %s: f8 scales are written as their own entry (%s.scale)", name,
                           name);
        for (int j = 0; j < i; j++) {
            if (strcmp(entries[j].name, name) == 0)
                return au_errf(err, AU_EINVAL, "tensor %s: named twice", name);
        }
    }
    return 0;
}

static int cmp_elem_size(const void *a, const void *b) {
    const st_write_item *x = a, *y = b;
    size_t sx = au_dtype_size(x->e->tensor.dtype), sy = au_dtype_size(y->e->tensor.dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return x->index - y->index; /* keep the caller's order otherwise */
}

int st_write(const char *path, const st_entry *entries, int n, const char *const *metadata, au_err *err) {
    int rc = check_entries(entries, n, err);
    if (rc < 0)
        return rc;
    st_write_item *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order)
        return au_errf(err, AU_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        order[i] = (st_write_item){&entries[i], i};
    qsort(order, (size_t)n, sizeof *order, cmp_elem_size);
    size_t header_len = 0;
    char *header = build_header(order, n, metadata, &header_len, err);
    if (!header) {
        free(order);
        return err ? err->code : AU_ENOMEM;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        free(header);
        free(order);
        return au_errf(err, AU_EINVAL, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = au_errf(err, AU_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    int bad = write_all(fd, len_le, 8) < 0 || write_all(fd, header, header_len) < 0;
    for (int k = 0; !bad && k < n; k++)
        bad = write_all(fd, order[k].e->tensor.data, au_nbytes(&order[k].e->tensor)) < 0;
    if (bad || fsync(fd) < 0) {
        rc = au_errf(err, AU_EIO, "%s: write: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        rc = au_errf(err, AU_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* Make the rename itself durable. */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        rc = au_errf(err, AU_EIO, "%s: fsync of the folder: %s", dir, strerror(errno));
    if (dfd >= 0)
        close(dfd);
out:
    free(header);
    free(order);
    return rc;
}
