// deps: au_io au_core
/* test_safetensors.c - reader, writer and index sets of engine/safetensors.c.
 *
 * Reads an image written by the Python safetensors library (header text as that
 * library wrote it), round-trips every dtype through st_write/st_open, opens a sharded
 * index, and feeds the reader hostile headers, each of which must fail with
 * AU_EFORMAT and a message naming the problem.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

static int g_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

/* An in-memory file: u64 header length, header text, data. */
static uint8_t *make_image(const char *header, const void *data, size_t n_data, size_t *n_out) {
    size_t hl = strlen(header);
    uint8_t *img = malloc(8 + hl + n_data + 1);
    for (int i = 0; i < 8; i++)
        img[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, header, hl);
    if (n_data)
        memcpy(img + 8 + hl, data, n_data);
    *n_out = 8 + hl + n_data;
    return img;
}

/* Open a header + data image; returns the status and leaves the message in err. */
static int open_image(const char *header, const void *data, size_t n_data, au_err *err) {
    size_t n;
    uint8_t *img = make_image(header, data, n_data, &n);
    st_set *s = NULL;
    int rc = st_open_memory(&s, img, n, err);
    st_close(s);
    free(img);
    return rc;
}

static void test_python_written(void) {
    /* safetensors.torch.save({"w": arange(6).reshape(2,3) f32, "i": [7,-1] i32,
     * "h": [1.5,-2,0.25] bf16}, metadata={"format": "pt"}) */
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                         "\"data_offsets\":[0,24]},\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                         "\"h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[32,38]}} ";
    uint8_t data[38];
    float w[6] = {0, 1, 2, 3, 4, 5};
    int32_t i32[2] = {7, -1};
    uint16_t h[3] = {0x3fc0, 0xc000, 0x3e80};
    memcpy(data, w, 24);
    memcpy(data + 24, i32, 8);
    memcpy(data + 32, h, 6);
    CHECK(strlen(header) == 200);
    size_t n;
    uint8_t *img = make_image(header, data, sizeof data, &n);
    CHECK(n == 246);
    st_set *s = NULL;
    au_err err = {0};
    int rc = st_open_memory(&s, img, n, &err);
    free(img); /* the set holds its own copy */
    CHECK(rc == 0);
    if (rc < 0) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(st_count(s) == 3);
    CHECK(strcmp(st_name_at(s, 0), "w") == 0 && strcmp(st_name_at(s, 2), "h") == 0);
    CHECK(st_name_at(s, 3) == NULL);
    const au_tensor *tw = st_get(s, "w"), *ti = st_get(s, "i"), *th = st_get(s, "h");
    CHECK(tw && tw->dtype == AU_F32 && tw->ndim == 2 && tw->shape[0] == 2 && tw->shape[1] == 3);
    CHECK(tw && ((const float *)tw->data)[5] == 5.0f);
    CHECK(ti && ti->dtype == AU_I32 && ((const int32_t *)ti->data)[1] == -1);
    CHECK(th && th->dtype == AU_BF16 && au_bf16_to_f32(((const uint16_t *)th->data)[0]) == 1.5f);
    CHECK(th && au_bf16_to_f32(((const uint16_t *)th->data)[2]) == 0.25f);
    CHECK(st_get(s, "missing") == NULL);
    CHECK(st_metadata(s, "format") && strcmp(st_metadata(s, "format"), "pt") == 0);
    CHECK(st_metadata(s, "nope") == NULL);
    st_close(s);
}

static void make_tmpdir(char *dir, size_t n) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/au_st_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* dir + "/" + name into out (exits on truncation: a test set-up error). */
static void join(char *out, size_t n, const char *dir, const char *name) {
    if (snprintf(out, n, "%s/%s", dir, name) >= (int)n) {
        fprintf(stderr, "path too long\n");
        exit(1);
    }
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    char p[4096];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        join(p, sizeof p, dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void test_roundtrip(const char *dir) {
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    uint16_t f16[4] = {au_f32_to_f16(1.0f), au_f32_to_f16(-0.5f), au_f32_to_f16(65504.0f), 0};
    uint16_t bf16[3] = {au_f32_to_bf16(3.0f), au_f32_to_bf16(-1.25f), 0x7f80};
    uint8_t f8[6] = {au_f32_to_f8e4m3(1.0f), au_f32_to_f8e4m3(-448.0f), 0, 1, 2, 3};
    int32_t i32[2] = {INT32_MIN, 42};
    int64_t i64[1] = {INT64_MAX};
    uint8_t u8[3] = {0, 128, 255};
    float scalar = 2.5f;
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s1[1] = {1}, s0[2] = {0, 5};
    st_entry e[] = {
        {"u8", au_tensor_make(AU_U8, u8, 1, s3)},        {"bf16", au_tensor_make(AU_BF16, bf16, 1, s3)},
        {"f32", au_tensor_make(AU_F32, f32, 2, s23)},    {"f8", au_tensor_make(AU_F8_E4M3, f8, 2, s23)},
        {"i64", au_tensor_make(AU_I64, i64, 1, s1)},     {"f16", au_tensor_make(AU_F16, f16, 1, s4)},
        {"i32", au_tensor_make(AU_I32, i32, 1, s2)},     {"scalar", au_tensor_make(AU_F32, &scalar, 0, NULL)},
        {"empty", au_tensor_make(AU_F32, NULL, 2, s0)},
    };
    const int n = (int)(sizeof e / sizeof e[0]);
    const char *meta[] = {"format", "pt", "note", "round trip", NULL};
    char path[4096];
    join(path, sizeof path, dir, "rt.safetensors");
    au_err err = {0};
    int rc = st_write(path, e, n, meta, &err);
    CHECK(rc == 0);
    if (rc < 0) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(count_files(dir) == 1); /* the temporary file is gone */
    /* Header length is a multiple of 8 and every tensor is aligned to its element size. */
    FILE *f = fopen(path, "rb");
    uint8_t len8[8] = {0};
    CHECK(f && fread(len8, 1, 8, f) == 8);
    if (f)
        fclose(f);
    CHECK(len8[0] % 8 == 0);
    st_set *s = NULL;
    rc = st_open(&s, path, &err);
    CHECK(rc == 0);
    if (rc < 0) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(st_count(s) == n);
    for (int i = 0; i < n; i++) {
        const au_tensor *t = st_get(s, e[i].name);
        CHECK(t != NULL);
        if (!t)
            continue;
        CHECK(t->dtype == e[i].tensor.dtype && t->ndim == e[i].tensor.ndim);
        CHECK(au_same_shape(t, &e[i].tensor));
        CHECK(au_nbytes(t) == 0 || memcmp(t->data, e[i].tensor.data, au_nbytes(t)) == 0);
        CHECK(((uintptr_t)t->data) % au_dtype_size(t->dtype) == 0);
    }
    CHECK(au_numel(st_get(s, "scalar")) == 1 && *(const float *)st_get(s, "scalar")->data == 2.5f);
    CHECK(strcmp(st_metadata(s, "note"), "round trip") == 0);
    st_close(s);

    /* Overwriting replaces the file atomically. */
    rc = st_write(path, e, 1, NULL, &err);
    CHECK(rc == 0);
    CHECK(st_open(&s, path, &err) == 0 && st_count(s) == 1 && st_metadata(s, "format") == NULL);
    st_close(s);
    CHECK(count_files(dir) == 1);

    /* Writer errors. */
    st_entry dup[2] = {e[0], e[0]};
    CHECK(st_write(path, dup, 2, NULL, &err) == AU_EINVAL && strstr(err.msg, "named twice"));
    char bad_path[4096];
    join(bad_path, sizeof bad_path, dir, "no/such/dir/x.safetensors");
    CHECK(st_write(bad_path, e, n, NULL, &err) == AU_EIO);
    CHECK(count_files(dir) == 1);
    const char *odd_meta[] = {"key", NULL};
    CHECK(st_write(path, e, 1, odd_meta, &err) == AU_EINVAL && strstr(err.msg, "key has no value"));
    float scale[2] = {1, 1};
    st_entry scaled = e[3];
    scaled.tensor.scale = scale;
    CHECK(st_write(path, &scaled, 1, NULL, &err) == AU_EINVAL && strstr(err.msg, "f8"));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_index(const char *dir) {
    float a[2] = {1, 2}, b[3] = {3, 4, 5}, c[1] = {6};
    int64_t s2[1] = {2}, s3[1] = {3}, s1[1] = {1};
    st_entry shard1[] = {{"layer.0.w", au_tensor_make(AU_F32, a, 1, s2)},
                         {"layer.0.b", au_tensor_make(AU_F32, c, 1, s1)}};
    st_entry shard2[] = {{"layer.1.w", au_tensor_make(AU_F32, b, 1, s3)}};
    char p1[4096], p2[4096], idx[4096];
    join(p1, sizeof p1, dir, "model-00001-of-00002.safetensors");
    join(p2, sizeof p2, dir, "model-00002-of-00002.safetensors");
    join(idx, sizeof idx, dir, "model.safetensors.index.json");
    au_err err = {0};
    const char *meta[] = {"shard", "one", NULL};
    CHECK(st_write(p1, shard1, 2, meta, &err) == 0);
    CHECK(st_write(p2, shard2, 1, NULL, &err) == 0);
    write_file(idx, "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
                    "\"layer.0.w\": \"model-00001-of-00002.safetensors\","
                    "\"layer.0.b\": \"model-00001-of-00002.safetensors\","
                    "\"layer.1.w\": \"model-00002-of-00002.safetensors\"}}");
    st_set *s = NULL;
    int rc = st_open(&s, idx, &err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(st_count(s) == 3);
        CHECK(((const float *)st_get(s, "layer.1.w")->data)[2] == 5.0f);
        CHECK(((const float *)st_get(s, "layer.0.w")->data)[1] == 2.0f);
        CHECK(strcmp(st_metadata(s, "shard"), "one") == 0);
        st_close(s);
    } else {
        fprintf(stderr, "  %s\n", err.msg);
    }
    /* A tensor mapped to the wrong shard. */
    write_file(idx, "{\"weight_map\": {\"layer.0.w\": \"model-00002-of-00002.safetensors\","
                    "\"layer.1.w\": \"model-00002-of-00002.safetensors\"}}");
    CHECK(st_open(&s, idx, &err) == AU_EFORMAT && strstr(err.msg, "layer.0.w") && s == NULL);
    /* A missing shard. */
    write_file(idx, "{\"weight_map\": {\"x\": \"model-00003-of-00002.safetensors\"}}");
    CHECK(st_open(&s, idx, &err) == AU_ENOTFOUND && strstr(err.msg, "model-00003"));
    /* A shard outside the index's folder. */
    write_file(idx, "{\"weight_map\": {\"x\": \"../evil.safetensors\"}}");
    CHECK(st_open(&s, idx, &err) == AU_EFORMAT);
    /* The same tensor in two shards. */
    CHECK(st_write(p2, shard1, 1, NULL, &err) == 0);
    write_file(idx, "{\"weight_map\": {\"layer.0.w\": \"model-00001-of-00002.safetensors\","
                    "\"layer.0.b\": \"model-00002-of-00002.safetensors\"}}");
    CHECK(st_open(&s, idx, &err) == AU_EFORMAT && strstr(err.msg, "two shards"));
    write_file(idx, "[1, 2]");
    CHECK(st_open(&s, idx, &err) == AU_EFORMAT && strstr(err.msg, "weight_map"));
    /* Missing plain file. */
    char nofile[4096];
    join(nofile, sizeof nofile, dir, "none.safetensors");
    CHECK(st_open(&s, nofile, &err) == AU_ENOTFOUND);
}

/* Each hostile header must be rejected with AU_EFORMAT and a message containing `expect`. */
static void expect_reject(const char *header, size_t n_data, const char *expect, int line) {
    static const uint8_t zeros[64];
    au_err err = {0};
    int rc = open_image(header, zeros, n_data, &err);
    if (rc != AU_EFORMAT || !strstr(err.msg, expect)) {
        fprintf(stderr, "%s:%d: header %s: rc %d msg \"%s\", expected AU_EFORMAT with \"%s\"\n", __FILE__, line,
                header, rc, err.msg, expect);
        g_failures++;
    }
}
#define REJECT(header, n_data, expect) expect_reject(header, n_data, expect, __LINE__)

static void test_hostile(void) {
    au_err err = {0};
    st_set *s = NULL;
    /* Length fields. */
    uint8_t short_img[5] = {1, 2, 3, 4, 5};
    CHECK(st_open_memory(&s, short_img, sizeof short_img, &err) == AU_EFORMAT && s == NULL);
    uint8_t past_eof[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(st_open_memory(&s, past_eof, sizeof past_eof, &err) == AU_EFORMAT && strstr(err.msg, "header length"));
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(st_open_memory(&s, huge, sizeof huge, &err) == AU_EFORMAT && strstr(err.msg, "header length"));
    CHECK(st_open_memory(&s, NULL, 0, &err) == AU_EFORMAT);
    /* A valid empty file is accepted. */
    CHECK(open_image("{}", NULL, 0, &err) == 0);
    CHECK(open_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                     NULL, 0, &err) == 0);
    /* JSON shape. */
    REJECT("[1,2,3]", 0, "not an object");
    REJECT("\"str\"", 0, "header JSON");
    REJECT("{\"a\":", 0, "header JSON");
    REJECT("{\"a\":1} trailing", 0, "header JSON");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
           4, "header JSON");
    REJECT("{\"t\":[1]}", 0, "tensor t: header entry is not an object");
    REJECT("{\"__metadata__\":[1]}", 0, "__metadata__");
    REJECT("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ entry k");
    /* Tensor descriptions. */
    REJECT("{\"t\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "tensor t: unsupported dtype");
    REJECT("{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor t:");
    REJECT("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor t:");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unexpected keys");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "7 dims");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
           "\"data_offsets\":[0,4]}}",
           4, "too large");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "two non-negative");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "two non-negative");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "outside");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "outside");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775807,9223372036854775807]}}", 4,
           "outside");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "4 bytes of data for a shape needing 8");
    REJECT("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}", 8, "not aligned");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           12, "overlaps");
    REJECT("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
           4, "overlaps");
    /* Deep nesting is refused by the JSON parser without exhausting the stack. */
    char deep[20000];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"';
    deep[k++] = 't';
    deep[k++] = '"';
    deep[k++] = ':';
    for (int i = 0; i < 4000; i++)
        deep[k++] = '[';
    for (int i = 0; i < 4000; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    au_err e2 = {0};
    CHECK(open_image(deep, NULL, 0, &e2) == AU_EFORMAT);
}

int main(void) {
    char dir[4096];
    make_tmpdir(dir, sizeof dir);
    test_python_written();
    test_roundtrip(dir);
    remove_tree(dir);
    make_tmpdir(dir, sizeof dir);
    test_index(dir);
    remove_tree(dir);
    test_hostile();
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_safetensors: all checks passed\n");
    return 0;
}
