// deps: au_vae au_cpu au_io au_core
/* test_vae_cache.c - the VAE's chunked streaming on tiny random weights.
 *
 * A tiny Wan VAE (dim 4, the real z_dim 16, multipliers [1,2,4,4], temporal
 * down/up-sampling at the deeper levels) is written with st_write under the official
 * key names, listed here from the module definitions (independently of the loader's
 * table). Checked:
 *  - decoding F latent frames gives 1+4(F-1) frames of 8x the size, finite, in [-1, 1];
 *  - chunk consistency: decoding the first k latent frames gives exactly the first
 *    1+4(k-1) frames of the full decode (the official chunking is causal), and
 *    encoding the first 1+4j frames gives the first 1+j latent frames of the full encode;
 *  - the histories carry information across chunks: changing latent frame 0 changes
 *    the frames decoded from the later chunks;
 *  - a second identical decode is bit-identical and makes no backend allocation, and
 *    vae_plan_decode predicts the memory the decode used;
 *  - vae_list_tensors gives the same names and shapes as the list here;
 *  - wrong shapes are refused; a missing or misshapen tensor fails naming it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "safetensors.h"
#include "wan_vae.h"
#include "check.h"

enum { DIM = 4, Z = 16, NRES = 2, NMULT = 4, LAT_H = 4, LAT_W = 6, F = 4 };
static const int mult[NMULT] = {1, 2, 4, 4};
static const int tdown[NMULT - 1] = {0, 1, 1};

/* ---- the tensor list of WanVAE_, from the module definitions ---- */

typedef struct tdesc {
    char name[128];
    int ndim;
    int64_t shape[5];
} tdesc;

static tdesc tensors[512];
static int n_tensors;

static void add(const char *prefix, const char *suffix, int ndim, int64_t a, int64_t b, int64_t c, int64_t d,
                int64_t e) {
    REQUIRE(n_tensors < 512, "tensor list full");
    tdesc *t = &tensors[n_tensors++];
    snprintf(t->name, sizeof t->name, "%s%s", prefix, suffix);
    int64_t s[5] = {a, b, c, d, e};
    t->ndim = ndim;
    memcpy(t->shape, s, sizeof s);
}

static void conv3(const char *p, int out, int in, int kt, int kh, int kw) { /* Conv3d / CausalConv3d */
    add(p, ".weight", 5, out, in, kt, kh, kw);
    add(p, ".bias", 1, out, 0, 0, 0, 0);
}

static void conv2(const char *p, int out, int in, int k) { /* nn.Conv2d */
    add(p, ".weight", 4, out, in, k, k, 0);
    add(p, ".bias", 1, out, 0, 0, 0, 0);
}

static void resblock(const char *p, int in, int out) {
    char q[128];
    add(p, ".residual.0.gamma", 4, in, 1, 1, 1, 0);
    snprintf(q, sizeof q, "%s.residual.2", p);
    conv3(q, out, in, 3, 3, 3);
    add(p, ".residual.3.gamma", 4, out, 1, 1, 1, 0);
    snprintf(q, sizeof q, "%s.residual.6", p);
    conv3(q, out, out, 3, 3, 3);
    if (in != out) {
        snprintf(q, sizeof q, "%s.shortcut", p);
        conv3(q, out, in, 1, 1, 1);
    }
}

static void middle(const char *coder, int c) {
    char p[128];
    snprintf(p, sizeof p, "%s.middle.0", coder);
    resblock(p, c, c);
    snprintf(p, sizeof p, "%s.middle.1.norm.gamma", coder);
    add(p, "", 3, c, 1, 1, 0, 0);
    snprintf(p, sizeof p, "%s.middle.1.to_qkv", coder);
    conv2(p, 3 * c, c, 1);
    snprintf(p, sizeof p, "%s.middle.1.proj", coder);
    conv2(p, c, c, 1);
    snprintf(p, sizeof p, "%s.middle.2", coder);
    resblock(p, c, c);
}

static void list_tensors(void) {
    char p[128];
    n_tensors = 0;
    /* Encoder3d: dims = dim * [1] + dim_mult */
    conv3("encoder.conv1", DIM, 3, 3, 3, 3);
    int idx = 0, in = DIM, out = DIM;
    for (int i = 0; i < NMULT; i++) {
        out = DIM * mult[i];
        for (int j = 0; j < NRES; j++, in = out) {
            snprintf(p, sizeof p, "encoder.downsamples.%d", idx++);
            resblock(p, in, out);
        }
        if (i != NMULT - 1) {
            snprintf(p, sizeof p, "encoder.downsamples.%d.resample.1", idx);
            conv2(p, out, out, 3);
            if (tdown[i]) {
                snprintf(p, sizeof p, "encoder.downsamples.%d.time_conv", idx);
                conv3(p, out, out, 3, 1, 1);
            }
            idx++;
        }
    }
    middle("encoder", out);
    add("encoder.head.0.gamma", "", 4, out, 1, 1, 1, 0);
    conv3("encoder.head.2", 2 * Z, out, 3, 3, 3);
    /* Decoder3d: dims = dim * [dim_mult[-1]] + reversed(dim_mult), upsampling reversed */
    int top = DIM * mult[NMULT - 1];
    conv3("decoder.conv1", top, Z, 3, 3, 3);
    middle("decoder", top);
    idx = 0;
    in = top;
    for (int i = 0; i < NMULT; i++) {
        out = DIM * mult[NMULT - 1 - i];
        if (i >= 1)
            in /= 2;
        for (int j = 0; j < NRES + 1; j++, in = out) {
            snprintf(p, sizeof p, "decoder.upsamples.%d", idx++);
            resblock(p, in, out);
        }
        if (i != NMULT - 1) {
            snprintf(p, sizeof p, "decoder.upsamples.%d.resample.1", idx);
            conv2(p, out / 2, out, 3);
            if (tdown[NMULT - 2 - i]) {
                snprintf(p, sizeof p, "decoder.upsamples.%d.time_conv", idx);
                conv3(p, 2 * out, out, 3, 1, 1);
            }
            idx++;
        }
    }
    add("decoder.head.0.gamma", "", 4, out, 1, 1, 1, 0);
    conv3("decoder.head.2", 3, out, 3, 3, 3);
    conv3("conv1", 2 * Z, 2 * Z, 1, 1, 1);
    conv3("conv2", Z, Z, 1, 1, 1);
}

/* vae_list_tensors must give exactly this list: each of its rows is looked up here. */
static int listed;
static void check_listed(const char *name, int ndim, const int64_t *shape, void *user) {
    int found = 0;
    for (int i = 0; i < n_tensors && !found; i++)
        if (!strcmp(tensors[i].name, name)) {
            REQUIRE(tensors[i].ndim == ndim && !memcmp(tensors[i].shape, shape, (size_t)ndim * sizeof *shape),
                  "vae_list_tensors: %s has another shape", name);
            found = 1;
        }
    REQUIRE(found, "vae_list_tensors: unexpected tensor %s", name);
    listed++;
}

/* ---- random data ---- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static float rand_uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int64_t numel(const tdesc *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* Write the VAE without tensor `skip` (or NULL) and with `misshape`'s first dim + 1 (or NULL). */
static void write_vae(const char *path, const char *skip, const char *misshape) {
    st_entry *e = calloc((size_t)n_tensors, sizeof *e);
    REQUIRE(e, "out of memory");
    int n = 0;
    for (int i = 0; i < n_tensors; i++) {
        tdesc *t = &tensors[i];
        if (skip && !strcmp(t->name, skip))
            continue;
        int64_t shape[5];
        memcpy(shape, t->shape, sizeof shape);
        if (misshape && !strcmp(t->name, misshape))
            shape[0]++;
        tdesc d = *t;
        memcpy(d.shape, shape, sizeof shape);
        int64_t cnt = numel(&d), fan_in = d.ndim > 1 ? cnt / d.shape[0] : 1;
        float *p = malloc((size_t)cnt * sizeof *p);
        REQUIRE(p, "out of memory");
        int is_gamma = strstr(t->name, "gamma") != NULL, is_bias = d.ndim == 1 && !is_gamma;
        for (int64_t k = 0; k < cnt; k++) /* gammas near 1, small biases, weights ~ 1/sqrt(fan_in) */
            p[k] = is_gamma ? 1.0f + 0.2f * rand_uniform()
                            : (is_bias ? 0.1f : 1.5f / sqrtf((float)fan_in)) * rand_uniform();
        e[n].name = t->name;
        e[n].tensor = au_tensor_make(AU_F32, p, d.ndim, shape);
        n++;
    }
    au_err err = {0};
    REQUIRE(st_write(path, e, n, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++)
        free(e[i].tensor.data);
    free(e);
}

/* ---- helpers over host copies ---- */

static au_backend *be;
static au_arena *job;

static au_tensor dev_tensor(int64_t c, int64_t t, int64_t h, int64_t w, const float *host) {
    au_err err = {0};
    au_tensor d;
    int64_t s[4] = {c, t, h, w};
    REQUIRE(be_arena_tensor(job, AU_F32, 4, s, &d, &err) == 0, "%s", err.msg);
    if (host)
        REQUIRE(be_upload(be, &d, host, &err) == 0, "%s", err.msg);
    return d;
}

static float *download(const au_tensor *t) {
    au_err err = {0};
    float *p = malloc((size_t)au_numel(t) * sizeof *p);
    REQUIRE(p, "out of memory");
    REQUIRE(be_download(be, p, t, &err) == 0 && be_sync(be, &err) == 0, "%s", err.msg);
    return p;
}

/* Frames [0, t) of a host [c, T, plane] array as a new [c, t, plane] array. */
static float *first_frames(const float *x, int64_t c, int64_t T, int64_t plane, int64_t t) {
    float *p = malloc((size_t)(c * t * plane) * sizeof *p);
    REQUIRE(p, "out of memory");
    for (int64_t i = 0; i < c; i++)
        memcpy(p + i * t * plane, x + i * T * plane, (size_t)(t * plane) * sizeof *p);
    return p;
}

/* max |a - b| over frames [t0, t1) of two [c, T, plane] arrays. */
static double frame_diff(const float *a, const float *b, int64_t c, int64_t T, int64_t plane, int64_t t0, int64_t t1) {
    double m = 0;
    for (int64_t i = 0; i < c; i++)
        for (int64_t k = (i * T + t0) * plane; k < (i * T + t1) * plane; k++)
            m = fmax(m, fabs((double)a[k] - b[k]));
    return m;
}

static float *decode(wan_vae *v, au_arena *act, const float *z, int64_t frames) {
    au_err err = {0};
    au_tensor dz = dev_tensor(Z, frames, LAT_H, LAT_W, z), dv = dev_tensor(3, 1 + 4 * (frames - 1), 8 * LAT_H, 8 * LAT_W, NULL);
    REQUIRE(vae_decode(v, act, &dz, &dv, &err) == 0, "%s", err.msg);
    return download(&dv);
}

static float *encode(wan_vae *v, au_arena *act, const float *video, int64_t frames) {
    au_err err = {0};
    au_tensor dv = dev_tensor(3, frames, 8 * LAT_H, 8 * LAT_W, video), dz = dev_tensor(Z, 1 + (frames - 1) / 4, LAT_H, LAT_W, NULL);
    REQUIRE(vae_encode(v, act, &dv, &dz, &err) == 0, "%s", err.msg);
    return download(&dz);
}

int main(void) {
    char path[256], bad[256];
    snprintf(path, sizeof path, "/tmp/test_vae_cache_%d.safetensors", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/test_vae_cache_%d_bad.safetensors", (int)getpid());
    list_tensors();
    write_vae(path, NULL, NULL);

    au_err err = {0};
    st_set *st = NULL;
    REQUIRE(st_open(&st, path, &err) == 0, "%s", err.msg);
    vae_config cfg;
    REQUIRE(vae_config_infer(st, &cfg, &err) == 0, "%s", err.msg);
    REQUIRE(cfg.dim == DIM && cfg.z_dim == Z && cfg.n_mult == NMULT && cfg.num_res_blocks == NRES,
          "inferred dim %d z_dim %d", cfg.dim, cfg.z_dim);
    REQUIRE(vae_list_tensors(&cfg, check_listed, NULL, &err) == 0, "%s", err.msg);
    REQUIRE(listed == n_tensors, "vae_list_tensors gave %d tensors, the module definitions %d", listed, n_tensors);
    printf("tensor list: %d tensors, names and shapes as the module definitions\n", listed);
    REQUIRE(be_cpu_create(&be, 0, &err) == 0, "%s", err.msg);
    wan_vae *v = NULL;
    REQUIRE(vae_load(&v, be, st, &cfg, &err) == 0, "%s", err.msg);
    job = be_arena_create(be, 1 << 20);
    au_arena *act = be_arena_create(be, 1 << 16);
    REQUIRE(job && act, "arenas");

    /* full decode: shape, range */
    const int64_t plane = 64 * LAT_H * LAT_W, lat_plane = LAT_H * LAT_W, T = 1 + 4 * (F - 1);
    float *z = malloc(Z * F * lat_plane * sizeof *z);
    REQUIRE(z, "out of memory");
    for (int64_t i = 0; i < Z * F * lat_plane; i++)
        z[i] = 1.5f * rand_uniform();
    float *full = decode(v, act, z, F);
    int64_t inside = 0;
    for (int64_t i = 0; i < 3 * T * plane; i++) {
        REQUIRE(isfinite(full[i]) && full[i] >= -1.0f && full[i] <= 1.0f, "video[%lld] = %g", (long long)i, full[i]);
        inside += fabsf(full[i]) < 0.999f;
    }
    REQUIRE(inside > 3 * T * plane / 2, "only %lld of %lld values unclipped", (long long)inside, (long long)(3 * T * plane));
    printf("decode: z [16,%d,%d,%d] -> video [3,%lld,%d,%d], %lld values unclipped\n", F, LAT_H, LAT_W, (long long)T,
           8 * LAT_H, 8 * LAT_W, (long long)inside);

    /* the same call again: identical, no allocation; the plan predicted it */
    vae_mem_stats m0, m1, plan;
    vae_get_mem_stats(v, &m0);
    uint64_t allocs = be_arena_chunk_allocs(act);
    float *again = decode(v, act, z, F);
    vae_get_mem_stats(v, &m1);
    REQUIRE(!memcmp(full, again, 3 * T * plane * sizeof *full), "second decode differs");
    REQUIRE(be_arena_chunk_allocs(act) == allocs && m1.cache_allocs == m0.cache_allocs,
          "second decode allocated (act %llu -> %llu, caches %llu -> %llu)", (unsigned long long)allocs,
          (unsigned long long)be_arena_chunk_allocs(act), (unsigned long long)m0.cache_allocs,
          (unsigned long long)m1.cache_allocs);
    REQUIRE(vae_plan_decode(v, F, LAT_H, LAT_W, &plan, &err) == 0, "%s", err.msg);
    REQUIRE(plan.chunk_bytes == m1.chunk_bytes && plan.cache_bytes == m1.cache_bytes && m1.chunk_bytes > 0,
          "plan %zu/%zu, decode used %zu/%zu", plan.chunk_bytes, plan.cache_bytes, m1.chunk_bytes, m1.cache_bytes);
    printf("memory: chunk %zu bytes, histories %zu bytes\n", m1.chunk_bytes, m1.cache_bytes);

    /* chunk consistency: a prefix of the latent decodes to a prefix of the video */
    for (int k = 1; k < F; k++) {
        float *zk = first_frames(z, Z, F, lat_plane, k), *vk = decode(v, act, zk, k);
        int64_t tk = 1 + 4 * (k - 1);
        float *ref = first_frames(full, 3, T, plane, tk);
        double d = frame_diff(vk, ref, 3, tk, plane, 0, tk);
        printf("decode of the first %d latent frames vs the first %lld frames of the full decode: max diff %g\n", k,
               (long long)tk, d);
        REQUIRE(d == 0.0, "prefix %d differs by %g", k, d);
        free(zk);
        free(vk);
        free(ref);
    }

    /* the histories carry latent frame 0 into every later chunk */
    float *z2 = malloc(Z * F * lat_plane * sizeof *z2);
    REQUIRE(z2, "out of memory");
    memcpy(z2, z, Z * F * lat_plane * sizeof *z);
    for (int64_t c = 0; c < Z; c++)
        for (int64_t k = 0; k < lat_plane; k++)
            z2[c * F * lat_plane + k] += 1.0f;
    float *changed = decode(v, act, z2, F);
    for (int k = 1; k < F; k++) {
        double d = frame_diff(changed, full, 3, T, plane, 1 + 4 * (k - 1), 1 + 4 * k);
        printf("latent frame 0 changed: chunk %d frames move by %g\n", k, d);
        REQUIRE(d > 1e-3, "chunk %d does not see latent frame 0 (diff %g)", k, d);
    }

    /* encode: a prefix of the video encodes to a prefix of the latent */
    const int K = 2, TV = 1 + 4 * K;
    float *video = malloc(3 * TV * plane * sizeof *video);
    REQUIRE(video, "out of memory");
    for (int64_t i = 0; i < 3 * TV * plane; i++)
        video[i] = rand_uniform();
    float *zf = encode(v, act, video, TV);
    for (int64_t i = 0; i < Z * (K + 1) * lat_plane; i++)
        REQUIRE(isfinite(zf[i]), "z[%lld] = %g", (long long)i, zf[i]);
    for (int j = 0; j < K; j++) {
        float *vj = first_frames(video, 3, TV, plane, 1 + 4 * j), *zj = encode(v, act, vj, 1 + 4 * j);
        float *ref = first_frames(zf, Z, K + 1, lat_plane, 1 + j);
        double d = frame_diff(zj, ref, Z, 1 + j, lat_plane, 0, 1 + j);
        printf("encode of the first %d frames vs the first %d latent frames of the full encode: max diff %g\n",
               1 + 4 * j, 1 + j, d);
        REQUIRE(d == 0.0, "encode prefix %d differs by %g", j, d);
        free(vj);
        free(zj);
        free(ref);
    }

    /* shapes are checked */
    au_tensor dz = dev_tensor(Z, F, LAT_H, LAT_W, z), dv = dev_tensor(3, T + 1, 8 * LAT_H, 8 * LAT_W, NULL);
    REQUIRE(vae_decode(v, act, &dz, &dv, &err) == AU_EINVAL && strstr(err.msg, "vae decode"), "bad video shape: %s",
          err.msg);
    au_tensor vbad = dev_tensor(3, 4, 8 * LAT_H, 8 * LAT_W, NULL), zbad = dev_tensor(Z, 1, LAT_H, LAT_W, NULL);
    REQUIRE(vae_encode(v, act, &vbad, &zbad, &err) == AU_EINVAL && strstr(err.msg, "1+4k"), "4-frame video: %s",
          err.msg);
    printf("bad shapes: %s\n", err.msg);

    /* a missing or misshapen tensor names itself */
    const char *missing = "decoder.upsamples.5.residual.6.bias", *misshapen = "encoder.middle.1.to_qkv.weight";
    st_set *st_bad = NULL;
    wan_vae *vb = NULL;
    write_vae(bad, missing, NULL);
    REQUIRE(st_open(&st_bad, bad, &err) == 0, "%s", err.msg);
    REQUIRE(vae_load(&vb, be, st_bad, &cfg, &err) == AU_ENOTFOUND && strstr(err.msg, missing) && !vb,
          "missing tensor: %s", err.msg);
    printf("missing: %s\n", err.msg);
    st_close(st_bad);
    write_vae(bad, NULL, misshapen);
    REQUIRE(st_open(&st_bad, bad, &err) == 0, "%s", err.msg);
    REQUIRE(vae_load(&vb, be, st_bad, &cfg, &err) == AU_EFORMAT && strstr(err.msg, misshapen) && !vb,
          "misshapen tensor: %s", err.msg);
    printf("misshapen: %s\n", err.msg);
    st_close(st_bad);
    unlink(bad);

    free(z);
    free(z2);
    free(full);
    free(again);
    free(changed);
    free(video);
    free(zf);
    be_arena_destroy(act);
    be_arena_destroy(job);
    vae_free(v);
    be_destroy(be);
    st_close(st);
    unlink(path);
    printf("ok\n");
    return 0;
}
