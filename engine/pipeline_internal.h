/* pipeline_internal.h - what the pipeline's two files share: the loaded model and its
 * arenas (opened in pipeline.c, run by the denoising loop of pipeline_ranked.c).
 * Not for other modules: they use pipeline.h.
 */
#ifndef AU_PIPELINE_INTERNAL_H
#define AU_PIPELINE_INTERNAL_H

#include "model.h"
#include "pipeline.h"
#include "replay.h"
#include "safetensors.h"
#include "tokenizer.h"

struct au_pipeline {
    au_manifest man;
    au_backend *be;
    st_set *st_t5, *st_dit, *st_vae;
    au_tokenizer *tok;
    umt5 *t5;
    wan_dit *dit;
    wan_vae *vae;
    au_arena *job, *t5_act, *dit_act, *vae_act;
    au_replay steps; /* recorded denoising steps (one rank), pipeline_ranked.c */
};

#endif
