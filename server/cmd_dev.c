/* cmd_dev.c - `auteur dev COMPONENT`: runs one engine component on tensors read from a
 * safetensors file and writes its result, so anyone can compare a stage with another
 * implementation (the PyTorch reference in tools/reference/, the official code).
 *
 *   tokenize   --text FILE            -> ids int32 [L], mask int32 [L]   (L = text_len, 512)
 *   t5         in: ids, mask          -> context f32 [L, dim], rows past the mask zero
 *   dit        in: x, t, context      -> out, the shape of x
 *   vae-decode in: z                  -> video f32 [3, 1+4(F-1), 8H, 8W]
 *   vae-encode in: video              -> z
 * --model is a model folder (auteur-model.json) or a single-component folder
 * (weights.safetensors + config.json, as under tests/golden/).
 */
#include "cmd_dev.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

typedef struct dev_args {
    const char *component, *model, *in, *out, *text;
    int threads;
} dev_args;

static void dev_usage(FILE *f) {
    fprintf(f, "usage: auteur dev tokenize|t5|dit|vae-decode|vae-encode --model DIR --out OUT.safetensors\n"
               "                  [--in IN.safetensors] [--text FILE] [--threads N]\n"
               "Runs one engine component on the CPU backend (see tools/reference/README.md).\n");
}

/* A host float32 copy of tensor `name` of the input set, checked for rank. */
static int input_f32(const st_set *in, const char *name, int ndim, au_tensor *out, float **host, au_err *err) {
    const au_tensor *t = st_get(in, name);
    if (!t)
        return au_errf(err, AU_ENOTFOUND, "input has no tensor \"%s\"", name);
    if (ndim && t->ndim != ndim)
        return au_errf(err, AU_EINVAL, "input tensor \"%s\": expected %d dims, found %d", name, ndim, t->ndim);
    *host = malloc((size_t)au_numel(t) * sizeof(float));
    if (!*host)
        return au_errf(err, AU_ENOMEM, "out of memory");
    *out = au_tensor_make(AU_F32, *host, t->ndim, t->shape);
    return au_convert_to_f32(*host, t->data, t->dtype, au_numel(t));
}

static int write_one(const char *path, const char *name, au_tensor t, au_err *err) {
    st_entry e = {name, t};
    return st_write(path, &e, 1, NULL, err);
}

static int dev_tokenize(const dev_args *a, au_err *err) {
    if (!a->text)
        return au_errf(err, AU_EINVAL, "tokenize needs --text FILE");
    au_manifest m;
    int rc = model_part_locate(a->model, AU_PART_TOKENIZER, &m, err);
    if (rc < 0)
        return rc;
    FILE *f = fopen(a->text, "rb");
    if (!f) {
        model_manifest_free(&m);
        return au_errf(err, AU_EIO, "cannot read %s", a->text);
    }
    char *text = calloc(1, 1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    au_tokenizer *tok = NULL;
    int len = m.has_dit_config ? m.dit.text_len : 512, n_tokens = 0;
    int32_t *ids = calloc((size_t)len, sizeof *ids), *mask = calloc((size_t)len, sizeof *mask);
    if (!text || !ids || !mask) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    text[n] = '\0';
    if ((rc = tok_load(&tok, m.tokenizer_path, err)) < 0 || (rc = tok_encode(tok, text, ids, len, &n_tokens, err)) < 0)
        goto done;
    for (int i = 0; i < n_tokens; i++)
        mask[i] = 1;
    int64_t shape[1] = {len};
    st_entry e[2] = {{"ids", au_tensor_make(AU_I32, ids, 1, shape)}, {"mask", au_tensor_make(AU_I32, mask, 1, shape)}};
    rc = st_write(a->out, e, 2, NULL, err);
done:
    if (tok)
        tok_free(tok);
    free(text);
    free(ids);
    free(mask);
    model_manifest_free(&m);
    return rc;
}

static int dev_t5(au_backend *be, au_arena *arena, const st_set *in, const dev_args *a, au_err *err) {
    au_manifest m;
    st_set *st = NULL;
    umt5 *model = NULL;
    float *result = NULL;
    int rc = model_part_locate(a->model, AU_PART_TEXT_ENCODER, &m, err);
    if (rc < 0)
        return rc;
    const au_tensor *ids = st_get(in, "ids"), *mask = st_get(in, "mask");
    if (!ids || ids->dtype != AU_I32 || ids->ndim != 1 || (mask && (mask->dtype != AU_I32 || au_numel(mask) != au_numel(ids)))) {
        rc = au_errf(err, AU_EINVAL, "t5 needs int32 \"ids\" [L] and optionally int32 \"mask\" [L]");
        goto done;
    }
    int len = (int)ids->shape[0], n_tokens = len;
    if (mask) {
        n_tokens = 0;
        for (int i = 0; i < len; i++)
            n_tokens += ((const int32_t *)mask->data)[i] != 0;
    }
    if ((rc = st_open(&st, m.text_encoder_path, err)) < 0)
        goto done;
    if (!m.has_t5_config && (rc = umt5_config_infer(st, &m.t5, err)) < 0)
        goto done;
    if ((rc = umt5_load(&model, be, st, &m.t5, err)) < 0)
        goto done;
    au_tensor ctx;
    int64_t shape[2] = {n_tokens, m.t5.dim};
    au_arena *act = be_arena_create(be, 1 << 20);
    if (!act) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    rc = be_arena_tensor(arena, AU_F32, 2, shape, &ctx, err);
    if (rc == 0)
        rc = umt5_encode(model, act, ids->data, n_tokens, &ctx, err);
    result = calloc((size_t)len * (size_t)m.t5.dim, sizeof(float));
    if (rc == 0 && !result)
        rc = au_errf(err, AU_ENOMEM, "out of memory");
    if (rc == 0)
        rc = be_download(be, result, &ctx, err);
    be_arena_destroy(act);
    if (rc == 0) {
        int64_t oshape[2] = {len, m.t5.dim};
        rc = write_one(a->out, "context", au_tensor_make(AU_F32, result, 2, oshape), err);
    }
done:
    free(result);
    if (model)
        umt5_free(model);
    if (st)
        st_close(st);
    model_manifest_free(&m);
    return rc;
}

static int dev_dit(au_backend *be, au_arena *arena, const st_set *in, const dev_args *a, au_err *err) {
    au_manifest m;
    st_set *st = NULL;
    wan_dit *model = NULL;
    float *hx = NULL, *ht = NULL, *hc = NULL, *result = NULL;
    au_arena *act = NULL;
    int rc = model_part_locate(a->model, AU_PART_DIT, &m, err);
    if (rc < 0)
        return rc;
    au_tensor x_h, t_h, c_h, x, c, out;
    dit_text *text = NULL;
    if ((rc = input_f32(in, "x", 4, &x_h, &hx, err)) < 0 || (rc = input_f32(in, "t", 0, &t_h, &ht, err)) < 0 ||
        (rc = input_f32(in, "context", 2, &c_h, &hc, err)) < 0)
        goto done;
    if ((rc = st_open(&st, m.dit_path, err)) < 0)
        goto done;
    if (!m.has_dit_config && (rc = dit_config_infer(st, &m.dit, err)) < 0)
        goto done;
    if ((rc = dit_load(&model, be, st, &m.dit, err)) < 0)
        goto done;
    act = be_arena_create(be, 1 << 20);
    result = malloc((size_t)au_numel(&x_h) * sizeof(float));
    if (!act || !result) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = be_arena_tensor(arena, AU_F32, 4, x_h.shape, &x, err)) < 0 ||
        (rc = be_arena_tensor(arena, AU_F32, 4, x_h.shape, &out, err)) < 0 ||
        (rc = be_arena_tensor(arena, be->act_dtype, 2, c_h.shape, &c, err)) < 0 || (rc = be_upload(be, &x, hx, err)) < 0)
        goto done;
    if (be->act_dtype == AU_F32)
        rc = be_upload(be, &c, hc, err);
    else {
        au_tensor c32;
        if ((rc = be_arena_tensor(arena, AU_F32, 2, c_h.shape, &c32, err)) == 0 &&
            (rc = be_upload(be, &c32, hc, err)) == 0)
            rc = be_copy(be, &c, &c32, err);
    }
    if (rc < 0 || (rc = dit_prepare_text(model, arena, &c, &text, err)) < 0 ||
        (rc = dit_forward(model, act, &x, ht[0], text, &out, err)) < 0 || (rc = be_download(be, result, &out, err)) < 0)
        goto done;
    rc = write_one(a->out, "out", au_tensor_make(AU_F32, result, 4, x_h.shape), err);
done:
    if (act)
        be_arena_destroy(act);
    free(hx);
    free(ht);
    free(hc);
    free(result);
    if (model)
        dit_free(model);
    if (st)
        st_close(st);
    model_manifest_free(&m);
    return rc;
}

static int dev_vae(au_backend *be, au_arena *arena, const st_set *in, const dev_args *a, int decode, au_err *err) {
    au_manifest m;
    st_set *st = NULL;
    wan_vae *model = NULL;
    float *hin = NULL, *result = NULL;
    au_arena *act = NULL;
    int rc = model_part_locate(a->model, AU_PART_VAE, &m, err);
    if (rc < 0)
        return rc;
    au_tensor in_h, x, y;
    if ((rc = input_f32(in, decode ? "z" : "video", 4, &in_h, &hin, err)) < 0)
        goto done;
    if ((rc = st_open(&st, m.vae_path, err)) < 0)
        goto done;
    if (!m.has_vae_config && (rc = vae_config_infer(st, &m.vae, err)) < 0)
        goto done;
    if ((rc = vae_load(&model, be, st, &m.vae, err)) < 0)
        goto done;
    int64_t oshape[4];
    if (decode) {
        int64_t oshape_d[4] = {3, 1 + 4 * (in_h.shape[1] - 1), 8 * in_h.shape[2], 8 * in_h.shape[3]};
        memcpy(oshape, oshape_d, sizeof oshape);
    } else {
        if ((in_h.shape[1] - 1) % 4 || in_h.shape[2] % 8 || in_h.shape[3] % 8) {
            rc = au_errf(err, AU_EINVAL, "vae-encode: video must be [3, 1+4k, 8h, 8w]");
            goto done;
        }
        int64_t oshape_e[4] = {m.vae.z_dim, 1 + (in_h.shape[1] - 1) / 4, in_h.shape[2] / 8, in_h.shape[3] / 8};
        memcpy(oshape, oshape_e, sizeof oshape);
    }
    act = be_arena_create(be, 1 << 20);
    au_tensor shape_probe = au_tensor_make(AU_F32, NULL, 4, oshape);
    result = malloc((size_t)au_numel(&shape_probe) * sizeof(float));
    if (!act || !result) {
        rc = au_errf(err, AU_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = be_arena_tensor(arena, AU_F32, 4, in_h.shape, &x, err)) < 0 ||
        (rc = be_arena_tensor(arena, AU_F32, 4, oshape, &y, err)) < 0 || (rc = be_upload(be, &x, hin, err)) < 0)
        goto done;
    rc = decode ? vae_decode(model, act, &x, &y, err) : vae_encode(model, act, &x, &y, err);
    if (rc < 0 || (rc = be_download(be, result, &y, err)) < 0)
        goto done;
    rc = write_one(a->out, decode ? "video" : "z", au_tensor_make(AU_F32, result, 4, oshape), err);
done:
    if (act)
        be_arena_destroy(act);
    free(hin);
    free(result);
    if (model)
        vae_free(model);
    if (st)
        st_close(st);
    model_manifest_free(&m);
    return rc;
}

int cmd_dev(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},   {"text", required_argument, 0, 't'},
                                         {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dev_args a = {0};
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            dev_usage(stdout);
            return 0;
        }
        dev_usage(stderr);
        return 2;
    }
    a.component = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a.model = optarg; break;
        case 'i': a.in = optarg; break;
        case 'o': a.out = optarg; break;
        case 't': a.text = optarg; break;
        case 'j': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 1024) {
                fprintf(stderr, "auteur dev: --threads: expected a number from 0 to 1024\n");
                return 2;
            }
            a.threads = (int)v;
            break;
        }
        case 'h': dev_usage(stdout); return 0;
        default: dev_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "auteur dev: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    int is_tok = !strcmp(a.component, "tokenize"), is_t5 = !strcmp(a.component, "t5"),
        is_dit = !strcmp(a.component, "dit"), is_dec = !strcmp(a.component, "vae-decode"),
        is_enc = !strcmp(a.component, "vae-encode");
    if (!(is_tok || is_t5 || is_dit || is_dec || is_enc)) {
        fprintf(stderr, "auteur dev: unknown component '%s'\n", a.component);
        dev_usage(stderr);
        return 2;
    }
    if (!a.model || !a.out || (!is_tok && !a.in)) {
        fprintf(stderr, "auteur dev %s: --model, --out%s are required\n", a.component, is_tok ? "" : " and --in");
        return 2;
    }
    au_err err = {0};
    int rc;
    if (is_tok) {
        rc = dev_tokenize(&a, &err);
    } else {
        au_backend *be = NULL;
        au_arena *arena = NULL;
        st_set *in = NULL;
        if ((rc = be_cpu_create(&be, a.threads, &err)) == 0 && (rc = st_open(&in, a.in, &err)) == 0) {
            arena = be_arena_create(be, 1 << 20);
            if (!arena)
                rc = au_errf(&err, AU_ENOMEM, "out of memory");
            else if (is_t5)
                rc = dev_t5(be, arena, in, &a, &err);
            else if (is_dit)
                rc = dev_dit(be, arena, in, &a, &err);
            else
                rc = dev_vae(be, arena, in, &a, is_dec, &err);
        }
        if (arena)
            be_arena_destroy(arena);
        if (in)
            st_close(in);
        if (be)
            be_destroy(be);
    }
    if (rc < 0) {
        fprintf(stderr, "auteur dev %s: %s\n", a.component, err.msg);
        return 1;
    }
    return 0;
}
