/* tokenizer.h - the UMT5 prompt tokenizer: Wan2.1's text cleaning, then a Hugging Face
 * tokenizer.json (SentencePiece Unigram) pipeline, giving the ids the `tokenizers`
 * library gives.
 *
 * tok_encode(text):
 *   1. Wan's cleaning (wan/modules/tokenizers.py, clean='whitespace'): ftfy.fix_text,
 *      html.unescape twice, strip, whitespace runs -> one space, strip. The ftfy step
 *      implements ftfy's fixers except mojibake repair (fix_encoding) and the final NFC
 *      normalisation; both are identity on clean UTF-8 text (see tokenizer_clean.c).
 *   2. tokenizer.json: added tokens split out, normalizer (Precompiled SentencePiece
 *      charsmap, Replace, Strip), pre-tokenizer (Metaspace, WhitespaceSplit), Unigram
 *      Viterbi with the unknown-piece score min_score - 10 and fused unknowns, then the
 *      post-processor's special tokens (umt5: "</s>" appended).
 *   3. Truncated to max_len keeping the post-processor's tokens (EOS stays last), padded
 *      with the pad id; *n_tokens is the number of real ids (the attention-mask sum).
 * Components of tokenizer.json that are not implemented make tok_load fail with
 * AU_EUNSUPPORTED naming them; nothing is silently skipped.
 *
 * A loaded tokenizer is read-only: tok_encode may run concurrently on one tokenizer.
 */
#ifndef AU_TOKENIZER_H
#define AU_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct au_tokenizer au_tokenizer;

int tok_load(au_tokenizer **out, const char *tokenizer_json_path, au_err *err);
/* Same, from the JSON text in memory (n_bytes of it). */
int tok_load_memory(au_tokenizer **out, const char *json_text, size_t n_bytes, au_err *err);
void tok_free(au_tokenizer *t);

/* Clean text, tokenize, append EOS, truncate to max_len keeping EOS last, pad with the pad
 * id into ids[max_len]; *n_tokens = number of real ids. text must be valid UTF-8
 * (AU_EINVAL otherwise). */
int tok_encode(const au_tokenizer *t, const char *text, int32_t *ids, int max_len, int *n_tokens, au_err *err);

/* Wan's cleaning alone (step 1): a malloc'ed NUL-terminated string in *out. */
int tok_clean(const char *text, char **out, au_err *err);

int tok_vocab_size(const au_tokenizer *t); /* highest id + 1, model and added tokens */
int tok_pad_id(const au_tokenizer *t);     /* "padding.pad_id" if set, else the id of "<pad>" */
int tok_eos_id(const au_tokenizer *t);     /* id of "</s>" */

#endif
