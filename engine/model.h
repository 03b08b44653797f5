/* model.h - a model folder: its manifest (auteur-model.json) and the files it names.
 *
 * {"format": "auteur-model/1", "name": "...",
 *  "tokenizer": "tokenizer.json",
 *  "text_encoder": {"file": "umt5.safetensors" | "x.safetensors.index.json", "config": {HF T5 keys}},
 *  "dit": {"file": "...", "config": {official WanModel keys}},
 *  "vae": {"file": "...", "config": {"dim", "z_dim", "dim_mult", "num_res_blocks",
 *                                   "temperal_downsample", "latents_mean", "latents_std"}},
 *  "defaults": {"width","height","frames","fps","steps","guidance_scale","shift","sampler","negative_prompt"},
 *  "limits": {"max_width","max_height","max_frames","max_steps","max_prompt_chars","size_multiple","sizes"}}
 *
 * A missing "config" is inferred from the tensor shapes by the module's *_config_infer;
 * missing defaults and limits are those of the official Wan2.1 text-to-video release
 * (832x480, 81 frames, 16 fps, 50 UniPC steps, shift 5, guidance 5, its negative prompt).
 */
#ifndef AU_MODEL_H
#define AU_MODEL_H

#include <limits.h>

#include "pipeline.h"
#include "status.h"
#include "umt5.h"
#include "wan_dit.h"
#include "wan_vae.h"

typedef struct au_manifest {
    char dir[PATH_MAX];
    char tokenizer_path[PATH_MAX];
    char text_encoder_path[PATH_MAX];
    char dit_path[PATH_MAX];
    char vae_path[PATH_MAX];
    int has_t5_config, has_dit_config, has_vae_config;
    umt5_config t5;
    dit_config dit;
    vae_config vae;
    au_model_info info;
    char *negative_prompt; /* owned; info.default_negative_prompt points here */
} au_manifest;

/* Read DIR/auteur-model.json; file names are resolved against DIR and must exist. */
int model_manifest_load(const char *dir, au_manifest *m, au_err *err);
void model_manifest_free(au_manifest *m);

/* One component of a model, for the component runner (`auteur dev`): located through
 * DIR/auteur-model.json, or in a single-component folder laid out like the golden files
 * (DIR/weights.safetensors + DIR/config.json, the config with the manifest's keys).
 * Fills the part's path field and config in m (has_*_config says whether a config was given). */
typedef enum au_model_part { AU_PART_TOKENIZER, AU_PART_TEXT_ENCODER, AU_PART_DIT, AU_PART_VAE } au_model_part;
int model_part_locate(const char *dir, au_model_part part, au_manifest *m, au_err *err);

/* The official Wan2.1 negative prompt (wan/configs/shared_config.py). */
extern const char *const model_wan21_negative_prompt;

#endif
