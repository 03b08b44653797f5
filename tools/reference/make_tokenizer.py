#!/usr/bin/env python3
"""Build a small tokenizer.json shaped like google/umt5-xxl's, from a text corpus.

umt5-xxl's tokenizer is a SentencePiece Unigram model converted to the Hugging Face
`tokenizers` format. This script does the same at toy scale so tests and the tiny
model have a tokenizer without any download:

  1. train a SentencePiece Unigram model on --corpus with nmt_nfkc normalisation and
     the T5 special ids (<pad>=0, </s>=1, <unk>=2, no <s>);
  2. convert it with the tokenizers library's own converter
     (SentencePieceUnigramTokenizer.from_spm): normalizer Sequence[Precompiled
     charsmap, Replace(" {2,}" -> " ")], Metaspace pre-tokenizer ("▁", prepend
     always), Unigram model with scores and unk_id;
  3. add what the umt5 file adds on top: the special tokens as added tokens and a
     TemplateProcessing post-processor that appends "</s>".

Usage: make_tokenizer.py --corpus FILE --vocab-size N --out tokenizer.json
Training is single-threaded with a fixed seed order, so the same corpus gives the
same file.
"""
import argparse
import io
import os
import sys
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
from tokenizers import AddedToken, processors
from tokenizers.implementations import SentencePieceUnigramTokenizer

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def train_spm(corpus_path, vocab_size, character_coverage):
    """Train a Unigram model; returns the serialized ModelProto bytes."""
    model = io.BytesIO()
    with open(corpus_path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    if not lines:
        raise SystemExit(f"{corpus_path}: corpus has no non-empty lines")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus may not support the full size
        normalization_rule_name="nmt_nfkc",
        character_coverage=character_coverage,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece=PAD,
        eos_piece=EOS,
        unk_piece=UNK,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def convert(model_bytes):
    """Convert serialized SentencePiece bytes to a tokenizers Tokenizer."""
    # from_spm imports the protobuf module by its bare name; sentencepiece ships it.
    sys.modules.setdefault("sentencepiece_model_pb2", sentencepiece_model_pb2)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spiece.model")
        with open(path, "wb") as f:
            f.write(model_bytes)
        wrapped = SentencePieceUnigramTokenizer.from_spm(path)
    tok = wrapped._tokenizer
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, EOS, UNK)])
    eos_id = tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", EOS], pair=["$A", EOS, "$B", EOS], special_tokens=[(EOS, eos_id)]
    )
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="UTF-8 text, one sentence per line")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--out", required=True, help="tokenizer.json to write")
    ap.add_argument("--character-coverage", type=float, default=1.0)
    args = ap.parse_args()

    tok = convert(train_spm(args.corpus, args.vocab_size, args.character_coverage))
    tmp = args.out + ".tmp"
    tok.save(tmp)
    os.replace(tmp, args.out)
    print(f"{args.out}: vocab {tok.get_vocab_size()}, pad {tok.token_to_id(PAD)}, "
          f"eos {tok.token_to_id(EOS)}, unk {tok.token_to_id(UNK)}")


if __name__ == "__main__":
    main()
