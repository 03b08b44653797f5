/* model.c - reads a model folder's auteur-model.json (format in model.h).
 *
 * Every problem names the key and the file: "auteur-model.json: dit.config.dim: expected a
 * positive integer". Unknown keys are ignored so newer manifests still load.
 */
#include "model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const model_wan21_negative_prompt =
    "\xe8\x89\xb2\xe8\xb0\x83\xe8\x89\xb3\xe4\xb8\xbd\xef\xbc\x8c\xe8\xbf\x87\xe6\x9b\x9d\xef\xbc\x8c"
    "\xe9\x9d\x99\xe6\x80\x81\xef\xbc\x8c\xe7\xbb\x86\xe8\x8a\x82\xe6\xa8\xa1\xe7\xb3\x8a\xe4\xb8\x8d"
    "\xe6\xb8\x85\xef\xbc\x8c\xe5\xad\x97\xe5\xb9\x95\xef\xbc\x8c\xe9\xa3\x8e\xe6\xa0\xbc\xef\xbc\x8c"
    "\xe4\xbd\x9c\xe5\x93\x81\xef\xbc\x8c\xe7\x94\xbb\xe4\xbd\x9c\xef\xbc\x8c\xe7\x94\xbb\xe9\x9d\xa2"
    "\xef\xbc\x8c\xe9\x9d\x99\xe6\xad\xa2\xef\xbc\x8c\xe6\x95\xb4\xe4\xbd\x93\xe5\x8f\x91\xe7\x81\xb0"
    "\xef\xbc\x8c\xe6\x9c\x80\xe5\xb7\xae\xe8\xb4\xa8\xe9\x87\x8f\xef\xbc\x8c\xe4\xbd\x8e\xe8\xb4\xa8"
    "\xe9\x87\x8f\xef\xbc\x8cJPEG\xe5\x8e\x8b\xe7\xbc\xa9\xe6\xae\x8b\xe7\x95\x99\xef\xbc\x8c\xe4\xb8"
    "\x91\xe9\x99\x8b\xe7\x9a\x84\xef\xbc\x8c\xe6\xae\x8b\xe7\xbc\xba\xe7\x9a\x84\xef\xbc\x8c\xe5\xa4"
    "\x9a\xe4\xbd\x99\xe7\x9a\x84\xe6\x89\x8b\xe6\x8c\x87\xef\xbc\x8c\xe7\x94\xbb\xe5\xbe\x97\xe4\xb8"
    "\x8d\xe5\xa5\xbd\xe7\x9a\x84\xe6\x89\x8b\xe9\x83\xa8\xef\xbc\x8c\xe7\x94\xbb\xe5\xbe\x97\xe4\xb8"
    "\x8d\xe5\xa5\xbd\xe7\x9a\x84\xe8\x84\xb8\xe9\x83\xa8\xef\xbc\x8c\xe7\x95\xb8\xe5\xbd\xa2\xe7\x9a"
    "\x84\xef\xbc\x8c\xe6\xaf\x81\xe5\xae\xb9\xe7\x9a\x84\xef\xbc\x8c\xe5\xbd\xa2\xe6\x80\x81\xe7\x95"
    "\xb8\xe5\xbd\xa2\xe7\x9a\x84\xe8\x82\xa2\xe4\xbd\x93\xef\xbc\x8c\xe6\x89\x8b\xe6\x8c\x87\xe8\x9e"
    "\x8d\xe5\x90\x88\xef\xbc\x8c\xe9\x9d\x99\xe6\xad\xa2\xe4\xb8\x8d\xe5\x8a\xa8\xe7\x9a\x84\xe7\x94"
    "\xbb\xe9\x9d\xa2\xef\xbc\x8c\xe6\x9d\x82\xe4\xb9\xb1\xe7\x9a\x84\xe8\x83\x8c\xe6\x99\xaf\xef\xbc"
    "\x8c\xe4\xb8\x89\xe6\x9d\xa1\xe8\x85\xbf\xef\xbc\x8c\xe8\x83\x8c\xe6\x99\xaf\xe4\xba\xba\xe5\xbe"
    "\x88\xe5\xa4\x9a\xef\xbc\x8c\xe5\x80\x92\xe7\x9d\x80\xe8\xb5\xb0";

#define MANIFEST "auteur-model.json"

/* Reads an optional integer; absent keeps *out. */
static int get_int(json_t *obj, const char *key, const char *path, int min, int *out, au_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1000000000)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s: expected an integer >= %d", path, key, min);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_float(json_t *obj, const char *key, const char *path, float *out, au_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s: expected a number", path, key);
    *out = (float)json_number_value(v);
    return 0;
}

static int get_int_array(json_t *obj, const char *key, const char *path, int *out, int max_n, int *n_out,
                         au_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_array(v) || (int)json_array_size(v) > max_n || json_array_size(v) == 0)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s: expected an array of 1..%d values", path, key, max_n);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_boolean(e))
            out[i] = json_is_true(e);
        else if (json_is_integer(e))
            out[i] = (int)json_integer_value(e);
        else
            return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s[%zu]: expected an integer", path, key, i);
    }
    if (n_out)
        *n_out = (int)json_array_size(v);
    return 0;
}

static int get_float16(json_t *obj, const char *key, const char *path, float out[16], au_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) != 16)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s: expected 16 numbers", path, key);
    for (size_t i = 0; i < 16; i++) {
        if (!json_is_number(json_array_get(v, i)))
            return au_errf(err, AU_EFORMAT, MANIFEST ": %s.%s[%zu]: expected a number", path, key, i);
        out[i] = (float)json_number_value(json_array_get(v, i));
    }
    return 0;
}

/* Resolves a file name of the manifest against the folder; it must exist. */
static int resolve_file(const char *dir, json_t *name, const char *key, char out[PATH_MAX], au_err *err) {
    if (!json_is_string(name) || !json_string_value(name)[0])
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s: expected a file name", key);
    const char *s = json_string_value(name);
    int n = s[0] == '/' ? snprintf(out, PATH_MAX, "%s", s) : snprintf(out, PATH_MAX, "%s/%s", dir, s);
    if (n >= PATH_MAX)
        return au_errf(err, AU_EINVAL, MANIFEST ": %s: path too long", key);
    if (access(out, R_OK) != 0)
        return au_errf(err, AU_ENOTFOUND, MANIFEST ": %s: cannot read %s", key, out);
    return 0;
}

/* {"file": ..., "config": {...}} -> path and the config object (NULL when absent). */
static int component(json_t *root, const char *dir, const char *key, char path[PATH_MAX], json_t **config,
                     au_err *err) {
    json_t *c = json_object_get(root, key);
    if (!json_is_object(c))
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s: expected an object with \"file\"", key);
    char where[64];
    snprintf(where, sizeof where, "%s.file", key);
    int rc = resolve_file(dir, json_object_get(c, "file"), where, path, err);
    if (rc < 0)
        return rc;
    *config = json_object_get(c, "config");
    if (*config && !json_is_object(*config))
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.config: expected an object", key);
    return 0;
}

static int parse_t5(json_t *c, umt5_config *t, au_err *err) {
    memset(t, 0, sizeof *t);
    t->max_distance = 128;
    t->eps = 1e-6f;
    const char *p = "text_encoder.config";
    int rc = 0;
    if ((rc = get_int(c, "vocab_size", p, 1, &t->vocab, err)) < 0 || (rc = get_int(c, "d_model", p, 1, &t->dim, err)) < 0 ||
        (rc = get_int(c, "d_kv", p, 1, &t->d_kv, err)) < 0 || (rc = get_int(c, "num_heads", p, 1, &t->num_heads, err)) < 0 ||
        (rc = get_int(c, "d_ff", p, 1, &t->ffn_dim, err)) < 0 ||
        (rc = get_int(c, "num_layers", p, 1, &t->num_layers, err)) < 0 ||
        (rc = get_int(c, "relative_attention_num_buckets", p, 1, &t->num_buckets, err)) < 0 ||
        (rc = get_int(c, "relative_attention_max_distance", p, 1, &t->max_distance, err)) < 0 ||
        (rc = get_float(c, "layer_norm_epsilon", p, &t->eps, err)) < 0)
        return rc;
    if (!t->vocab || !t->dim || !t->d_kv || !t->num_heads || !t->ffn_dim || !t->num_layers || !t->num_buckets)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s: vocab_size, d_model, d_kv, num_heads, d_ff, num_layers "
                       "and relative_attention_num_buckets are required", p);
    return 0;
}

static int parse_dit(json_t *c, dit_config *d, au_err *err) {
    memset(d, 0, sizeof *d);
    d->freq_dim = 256;
    d->in_dim = d->out_dim = 16;
    d->text_len = 512;
    d->text_dim = 4096;
    d->patch[0] = 1;
    d->patch[1] = d->patch[2] = 2;
    d->eps = 1e-6f;
    const char *p = "dit.config";
    int rc, n_patch = 0;
    if ((rc = get_int(c, "dim", p, 1, &d->dim, err)) < 0 || (rc = get_int(c, "ffn_dim", p, 1, &d->ffn_dim, err)) < 0 ||
        (rc = get_int(c, "freq_dim", p, 2, &d->freq_dim, err)) < 0 ||
        (rc = get_int(c, "num_heads", p, 1, &d->num_heads, err)) < 0 ||
        (rc = get_int(c, "num_layers", p, 1, &d->num_layers, err)) < 0 ||
        (rc = get_int(c, "in_dim", p, 1, &d->in_dim, err)) < 0 || (rc = get_int(c, "out_dim", p, 1, &d->out_dim, err)) < 0 ||
        (rc = get_int(c, "text_len", p, 1, &d->text_len, err)) < 0 ||
        (rc = get_int(c, "text_dim", p, 1, &d->text_dim, err)) < 0 ||
        (rc = get_int_array(c, "patch_size", p, d->patch, 3, &n_patch, err)) < 0 ||
        (rc = get_float(c, "eps", p, &d->eps, err)) < 0)
        return rc;
    if (n_patch && n_patch != 3)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s.patch_size: expected 3 values", p);
    if (!d->dim || !d->ffn_dim || !d->num_heads || !d->num_layers || d->dim % d->num_heads)
        return au_errf(err, AU_EFORMAT, MANIFEST ": %s: dim, ffn_dim, num_heads, num_layers required, "
                       "dim divisible by num_heads", p);
    return 0;
}

static int parse_vae(json_t *c, vae_config *v, au_err *err) {
    vae_config_default(v);
    const char *p = "vae.config";
    int rc, n_td = 0;
    if ((rc = get_int(c, "dim", p, 1, &v->dim, err)) < 0 || (rc = get_int(c, "z_dim", p, 1, &v->z_dim, err)) < 0 ||
        (rc = get_int_array(c, "dim_mult", p, v->dim_mult, 4, &v->n_mult, err)) < 0 ||
        (rc = get_int(c, "num_res_blocks", p, 1, &v->num_res_blocks, err)) < 0 ||
        (rc = get_int_array(c, "temperal_downsample", p, v->temporal_downsample, 3, &n_td, err)) < 0 ||
        (rc = get_float16(c, "latents_mean", p, v->mean, err)) < 0 ||
        (rc = get_float16(c, "latents_std", p, v->std, err)) < 0)
        return rc;
    if (v->z_dim != 16)
        return au_errf(err, AU_EUNSUPPORTED, MANIFEST ": %s.z_dim: only 16 latent channels are supported", p);
    return 0;
}

static void info_defaults(au_model_info *i) {
    memset(i, 0, sizeof *i);
    snprintf(i->name, sizeof i->name, "wan2.1-t2v");
    i->default_width = 832;
    i->default_height = 480;
    i->default_frames = 81;
    i->default_fps = 16;
    i->default_steps = 50;
    i->default_guidance = 5.0f;
    i->default_shift = 5.0f;
    snprintf(i->default_sampler, sizeof i->default_sampler, "unipc");
    i->max_width = 1280;
    i->max_height = 1280;
    i->max_frames = 129;
    i->max_steps = 100;
    i->max_prompt_chars = 2000;
    i->size_multiple = 16;
}

static int parse_defaults(json_t *root, au_manifest *m, au_err *err) {
    au_model_info *i = &m->info;
    json_t *d = json_object_get(root, "defaults");
    json_t *neg = NULL;
    int rc;
    if (d) {
        if (!json_is_object(d))
            return au_errf(err, AU_EFORMAT, MANIFEST ": defaults: expected an object");
        if ((rc = get_int(d, "width", "defaults", 16, &i->default_width, err)) < 0 ||
            (rc = get_int(d, "height", "defaults", 16, &i->default_height, err)) < 0 ||
            (rc = get_int(d, "frames", "defaults", 1, &i->default_frames, err)) < 0 ||
            (rc = get_int(d, "fps", "defaults", 1, &i->default_fps, err)) < 0 ||
            (rc = get_int(d, "steps", "defaults", 1, &i->default_steps, err)) < 0 ||
            (rc = get_float(d, "guidance_scale", "defaults", &i->default_guidance, err)) < 0 ||
            (rc = get_float(d, "shift", "defaults", &i->default_shift, err)) < 0)
            return rc;
        json_t *s = json_object_get(d, "sampler");
        if (s) {
            if (!json_is_string(s) || strlen(json_string_value(s)) >= sizeof i->default_sampler)
                return au_errf(err, AU_EFORMAT, MANIFEST ": defaults.sampler: expected \"unipc\" or \"euler\"");
            snprintf(i->default_sampler, sizeof i->default_sampler, "%s", json_string_value(s));
        }
        neg = json_object_get(d, "negative_prompt");
        if (neg && !json_is_string(neg))
            return au_errf(err, AU_EFORMAT, MANIFEST ": defaults.negative_prompt: expected a string");
    }
    m->negative_prompt = strdup(neg ? json_string_value(neg) : model_wan21_negative_prompt);
    if (!m->negative_prompt)
        return au_errf(err, AU_ENOMEM, "out of memory");
    i->default_negative_prompt = m->negative_prompt;

    json_t *l = json_object_get(root, "limits");
    if (l) {
        if (!json_is_object(l))
            return au_errf(err, AU_EFORMAT, MANIFEST ": limits: expected an object");
        if ((rc = get_int(l, "max_width", "limits", 16, &i->max_width, err)) < 0 ||
            (rc = get_int(l, "max_height", "limits", 16, &i->max_height, err)) < 0 ||
            (rc = get_int(l, "max_frames", "limits", 1, &i->max_frames, err)) < 0 ||
            (rc = get_int(l, "max_steps", "limits", 1, &i->max_steps, err)) < 0 ||
            (rc = get_int(l, "max_prompt_chars", "limits", 1, &i->max_prompt_chars, err)) < 0 ||
            (rc = get_int(l, "size_multiple", "limits", 16, &i->size_multiple, err)) < 0)
            return rc;
        json_t *sizes = json_object_get(l, "sizes");
        if (sizes) {
            if (!json_is_array(sizes) || json_array_size(sizes) > 16)
                return au_errf(err, AU_EFORMAT, MANIFEST ": limits.sizes: expected at most 16 \"WxH\" strings");
            for (size_t k = 0; k < json_array_size(sizes); k++) {
                json_t *e = json_array_get(sizes, k);
                int w, h;
                char tail;
                if (!json_is_string(e) || sscanf(json_string_value(e), "%dx%d%c", &w, &h, &tail) != 2 || w <= 0 || h <= 0)
                    return au_errf(err, AU_EFORMAT, MANIFEST ": limits.sizes[%zu]: expected \"WIDTHxHEIGHT\"", k);
                i->sizes[i->n_sizes][0] = w;
                i->sizes[i->n_sizes][1] = h;
                i->n_sizes++;
            }
        }
    }
    if (i->size_multiple % 16)
        return au_errf(err, AU_EFORMAT, MANIFEST ": limits.size_multiple must be a multiple of 16");
    return 0;
}

int model_manifest_load(const char *dir, au_manifest *m, au_err *err) {
    memset(m, 0, sizeof *m);
    if (snprintf(m->dir, sizeof m->dir, "%s", dir) >= (int)sizeof m->dir)
        return au_errf(err, AU_EINVAL, "model folder path too long");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" MANIFEST, dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (access(path, R_OK) != 0)
            return au_errf(err, AU_ENOTFOUND, "model folder %s has no readable " MANIFEST
                           " (see README: pointing Auteur at Wan2.1 weights)", dir);
        return au_errf(err, AU_EFORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
    }
    int rc = AU_EFORMAT;
    json_t *t5c = NULL, *ditc = NULL, *vaec = NULL;
    if (!json_is_object(root)) {
        rc = au_errf(err, AU_EFORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    json_t *fmt = json_object_get(root, "format");
    if (fmt && (!json_is_string(fmt) || strcmp(json_string_value(fmt), "auteur-model/1") != 0)) {
        rc = au_errf(err, AU_EUNSUPPORTED, "%s: format must be \"auteur-model/1\"", path);
        goto done;
    }
    info_defaults(&m->info);
    json_t *name = json_object_get(root, "name");
    if (json_is_string(name))
        snprintf(m->info.name, sizeof m->info.name, "%s", json_string_value(name));
    if ((rc = resolve_file(dir, json_object_get(root, "tokenizer"), "tokenizer", m->tokenizer_path, err)) < 0 ||
        (rc = component(root, dir, "text_encoder", m->text_encoder_path, &t5c, err)) < 0 ||
        (rc = component(root, dir, "dit", m->dit_path, &ditc, err)) < 0 ||
        (rc = component(root, dir, "vae", m->vae_path, &vaec, err)) < 0)
        goto done;
    vae_config_default(&m->vae);
    if ((t5c && (rc = parse_t5(t5c, &m->t5, err)) < 0) || (ditc && (rc = parse_dit(ditc, &m->dit, err)) < 0) ||
        (vaec && (rc = parse_vae(vaec, &m->vae, err)) < 0))
        goto done;
    m->has_t5_config = t5c != NULL;
    m->has_dit_config = ditc != NULL;
    m->has_vae_config = vaec != NULL;
    rc = parse_defaults(root, m, err);
done:
    json_decref(root);
    if (rc < 0) {
        au_err_prefix(err, "model %s", dir);
        model_manifest_free(m);
    }
    return rc;
}

void model_manifest_free(au_manifest *m) {
    free(m->negative_prompt);
    m->negative_prompt = NULL;
    m->info.default_negative_prompt = NULL;
}

static int load_part_config(const char *dir, au_model_part part, au_manifest *m, au_err *err) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, R_OK) != 0)
        return 0; /* inferred from shapes */
    json_error_t jerr;
    json_t *c = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!c)
        return au_errf(err, AU_EFORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
    int rc = 0;
    if (!json_is_object(c))
        rc = au_errf(err, AU_EFORMAT, "%s: expected a JSON object", path);
    else if (part == AU_PART_TEXT_ENCODER && (rc = parse_t5(c, &m->t5, err)) == 0)
        m->has_t5_config = 1;
    else if (part == AU_PART_DIT && (rc = parse_dit(c, &m->dit, err)) == 0)
        m->has_dit_config = 1;
    else if (part == AU_PART_VAE && (rc = parse_vae(c, &m->vae, err)) == 0)
        m->has_vae_config = 1;
    json_decref(c);
    return rc;
}

int model_part_locate(const char *dir, au_model_part part, au_manifest *m, au_err *err) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" MANIFEST, dir);
    if (access(path, R_OK) == 0)
        return model_manifest_load(dir, m, err);
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    vae_config_default(&m->vae);
    char *dst = part == AU_PART_TOKENIZER      ? m->tokenizer_path
                : part == AU_PART_TEXT_ENCODER ? m->text_encoder_path
                : part == AU_PART_DIT          ? m->dit_path
                                               : m->vae_path;
    const char *file = part == AU_PART_TOKENIZER ? "tokenizer.json" : "weights.safetensors";
    if (snprintf(dst, PATH_MAX, "%s/%s", dir, file) >= PATH_MAX)
        return au_errf(err, AU_EINVAL, "model folder path too long");
    if (access(dst, R_OK) != 0)
        return au_errf(err, AU_ENOTFOUND, "%s has neither " MANIFEST " nor a readable %s", dir, file);
    return part == AU_PART_TOKENIZER ? 0 : load_part_config(dir, part, m, err);
}
