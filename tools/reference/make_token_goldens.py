#!/usr/bin/env python3
"""Reference token ids for engine/tokenizer.c, and the Unicode/HTML tables it is built from.

Goldens (default mode): builds the test tokenizers from tests/golden/tokens/corpus.txt with
make_tokenizer.py, stores each as <name>.tokenizer.json.xz, and writes <name>.json with,
for every prompt of PROMPTS, the text after Wan2.1's prompt cleaning and the ids and
attention-mask length that the Hugging Face `tokenizers` library gives for it (EOS
appended, truncated to 512 keeping EOS last, padded with <pad>). Where ftfy's NFC step
or mojibake repair (not implemented in C) changes the outcome, the case also holds
"subset": the same for the text cleaned without those two steps.

    make_token_goldens.py [--out-dir tests/golden/tokens] [--extra NAME=tokenizer.json ...]

--extra adds goldens for an existing tokenizer.json (e.g. google/umt5-xxl's).

The cleaning is Wan's (wan/modules/tokenizers.py, clean='whitespace'): ftfy.fix_text,
html.unescape twice, strip, every run of regex `\\s` replaced by one space, strip.

Tables (--c-tables ENGINE_DIR): writes engine/tokenizer_html_table.c (Python's
html.entities.html5 plus ftfy's upper-case aliases) and engine/tokenizer_unicode_table.c
(grapheme-break classes, whitespace sets, decimal digits, ftfy's width, ligature and
Windows-1252 maps), so the C code uses exactly the data of the Python it must match.
Needs: tokenizers, sentencepiece, protobuf, ftfy, regex.
"""
import argparse
import html
import html.entities
import json
import lzma
import os
import sys
import unicodedata

import ftfy
import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252)
import ftfy.chardata
import regex
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer  # noqa: E402

MAX_LEN = 512

LONG = (
    "A sweeping cinematic shot of an ancient city at dusk, lanterns glowing along narrow "
    "streets, merchants closing their stalls, children chasing each other past fountains, "
    "pigeons circling the bell tower while the last light fades behind distant hills. "
)

PROMPTS = [
    # English
    "A cat walking on the grass, realistic style.",
    "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a spotlighted stage.",
    "The camera pans slowly from left to right across a quiet harbour full of fishing boats.",
    "Low quality, blurry, distorted faces, extra fingers, watermark, text, static frame.",
    "UPPER CASE WORDS and MiXeD cAsE and numbers 0123456789 and 3.14159 and 1,000,000",
    "punctuation!!! ??? ... --- ;;; ::: ((parens)) [brackets] {braces} <angle> @#$%^*_+=|\\~`",
    "a",
    # Chinese, Japanese, Korean
    "一只小猫在阳光下的草地上奔跑，背景是蓝天白云。",
    "镜头缓缓推进，一位老人坐在河边钓鱼，夕阳西下，水面波光粼粼。",
    "赛博朋克风格的未来城市，飞行汽车穿梭在高楼之间，霓虹灯闪烁。龘靐齉",
    "桜の花が風に舞い、川沿いの小道を学生たちが歩いている。ｶﾀｶﾅ ﾊﾝｶｸ ｶﾞｷﾞ",
    "한 소녀가 비 오는 거리를 우산을 쓰고 걸어가고 있다.",
    # accents, precomposed and decomposed
    "The résumé of a naïve café owner lies next to a crème brûlée in São Paulo.",
    "Decomposed: re\u0301sume\u0301 cafe\u0301 nai\u0308ve, stacked e\u0301\u0323 e\u0323\u0301 and \uff21\u0301.",
    "Über den Wolken fliegt ein kleines Flugzeug über die Alpen; Straße, Æsir, Œuvre, Ångström.",
    "Vietnamese: Một chiếc thuyền nhỏ trôi trên sông vào buổi sáng sớm.",
    # emoji
    "A happy dog 🐶 running on the beach 🏖️ at sunset 🌅!",
    "Family 👨\u200d👩\u200d👧\u200d👦, thumbs 👍🏽, flags 🇫🇷🇯🇵, keycap #️⃣ 1️⃣, heart ❤️, ©️ ™️ ‼️",
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇",
    # very long (over 512 tokens)
    LONG * 12,
    "镜头缓缓推进，一位老人坐在河边钓鱼。" * 60,
    # empty-ish and whitespace
    "",
    " ",
    "   \t\n\r\n   ",
    "\u3000\u00a0\u2003\u2028\u2029\u0085",
    "  leading and trailing spaces  ",
    "multiple     spaces\tand\ttabs\nand\nnewlines\r\nand\u00a0nbsp\u2009thin\u3000ideographic",
    # HTML entities
    "Tom &amp; Jerry",
    "Tom &amp;amp; Jerry &amp;amp;amp;amp; Spike",
    "&lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &#39;single&#39; &apos;apos&apos;",
    "&eacute;t&eacute; &Eacute;COLE &EACUTE;COLE P&EACUTE;REZ BUNDESSTRA&SZLIG;E &nTILDE; &NTILDE;",
    "&#233;&#xE9;&#XE9; &#128512; &#x1F600; &#0; &#13; &#128; &#x93;hi&#x94; &#xD800; &#1114112; &#65535;",
    "legacy &amp &lt &copy &notit &notin; &ampx &AMP; &Amp; &ltfoo &#65 &#x41 &# &#x; &;",
    "a < b &amp;amp; c",
    "a < b &amp;amp;amp; c &amp;amp;amp;amp; d",
    "x &amp;amp;amp;amp; y\n<p> &amp;amp;amp; </p>\nz &amp;amp;amp; &EACUTE;",
    "line one &amp;amp; <tag>\nline two &amp;amp; after a tag line",
    "deep " * 40 + "&" + "amp;" * 300 + "lt;b&gt; and &" + "amp;" * 50 + "#x201C;quoted&" + "amp;" * 9 + "#13;\nend",
    "&hellip; &mdash; &ndash; &lsquo;x&rsquo; &ldquo;y&rdquo; &nbsp;&nbsp;&emsp;",
    "&Jscr;ohn &HilbertSpace;ancock &checkmark; &fjlig; &NotNestedGreaterGreater; &bne;",
    # control characters
    "bell\x07 backspace\x08 vt\x0b ff\x0c so\x0e esc\x1b del\x7f nul-free",
    "\x1b[31mred text\x1b[0m and \x1b[1;4mbold underline\x1b[m",
    "C1 controls: \x80 \x81 \x85 \x8d \x93quoted\x94 \x96 \x9f",
    "\ufeffBOM at start, zero\u200bwidth\u200cnon\u200djoiner, \u2060word joiner, \u206a deprecated \ufffc obj",
    "bidi \u200e\u200f\u202a\u202b\u202c\u202d\u202e marks, soft\u00adhyphen, tag \U000E0041",
    # quotes, ligatures, width
    "\u201cCurly double\u201d and \u2018curly single\u2019 and \u201elow\u201f and \u02bcmodifier",
    "ligatures: \ufb01nd \ufb02ow o\ufb00 \ufb03 \ufb04 \ufb05 \ufb06 \u0132 \u0133 \u01c4 \u01c9",
    "fullwidth: \uff21\uff22\uff23\uff11\uff12\uff13\uff01\uff1f\uff08\uff09\uff5e \uffe5\uffe1 \uffe8",
    "math and compat: \u2460 \u2461 \u00bd \u00b2 \u2122 \u2163 \u33a1 \u3392 \u210c \U0001d400\U0001d41a \u2126",
    # mixed scripts
    "Кошка сидит на подоконнике and watches the snow 雪が降る 눈이 온다 ثلج बर्फ หิมะ χιόνι",
    "رجل يمشي في الصحراء عند غروب الشمس، والرمال تتحرك مع الرياح.",
    "एक बच्चा बारिश में खेल रहा है और कागज़ की नाव पानी में तैर रही है।",
    "ช้างเดินอยู่ในป่าใหญ่ แสงแดดส่องผ่านใบไม้",
    "Hebrew שלום עולם, Armenian Բարեւ, Georgian გამარჯობა, Amharic ሰላም, Tamil வணக்கம்",
    "Prepend \u0600\u0661 and \u0d4e\u0d15 and spacing \u0915\u093e and combining a\u0300\u0301\u0302",
    # special-token text
    "text with </s> inside and <pad> and <unk> too</s>",
    "</s>",
    "<extra_id_0> sentinel <extra_id_99>",
    # unknown-to-vocab characters
    "𓀀𓀁 hieroglyphs ꙮ and \U0001f9ff nazar and \u2603 snowman",
]


# A hand-written vocabulary for what trained ones rarely show: equal-score segmentations
# (the earlier offer wins), a piece listed twice (the last id wins), a multi-character
# piece whose characters are not pieces, unknowns fused, unk_id not first.
HANDMADE = {
    "version": "1.0", "truncation": None, "padding": None, "decoder": None, "normalizer": None,
    "added_tokens": [{"id": 1, "content": "</s>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                                                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                       "pair": [], "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
    "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": False,
              "vocab": [["<pad>", 0.0], ["</s>", 0.0], ["\u2581", -1.0], ["<unk>", 0.0], ["a", -1.0], ["b", -1.0],
                        ["ab", -2.0], ["\u2581a", -1.5], ["c", -2.0], ["c", -0.5], ["abc", -4.0], ["bc", -2.5],
                        ["xyz", -3.0]]},
}
HANDMADE_PROMPTS = ["ab", "abc", "ab ab", "cab", "cabcab cab", "xyz", "xy", "qq xyzq", "c", "aqqb", "c c  c",
                    "</s>ab</s>", "", "xyzxyzxyz " * 200]

# ------------------------------------------------------------------ Wan cleaning


def wan_clean(text, **ftfy_options):
    """Wan2.1's prompt cleaning for clean='whitespace' (see the module docstring)."""
    text = ftfy.fix_text(text, **ftfy_options)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip()


# ------------------------------------------------------------------ goldens


def xz_write(path, data):
    with open(path, "wb") as f:
        f.write(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def special_id(tok, content):
    i = tok.token_to_id(content)
    if i is None:
        raise SystemExit(f"tokenizer has no {content}")
    return i


def goldens_for(tok, tokenizer_file, prompts=PROMPTS):
    pad_id, eos_id = special_id(tok, "<pad>"), special_id(tok, "</s>")
    tok.enable_truncation(max_length=MAX_LEN)
    tok.enable_padding(length=MAX_LEN, pad_id=pad_id, pad_token="<pad>")
    def reference(cleaned):
        enc = tok.encode(cleaned)
        n = sum(enc.attention_mask)
        assert len(enc.ids) == MAX_LEN and all(i == pad_id for i in enc.ids[n:])
        return {"cleaned": cleaned, "n_tokens": n, "ids": enc.ids[:n]}

    cases = []
    for prompt in prompts:
        case = {"prompt": prompt, **reference(wan_clean(prompt))}
        # The C cleaning leaves out ftfy's mojibake repair and NFC step; where that changes
        # the result, "subset" holds the library's answer for the text cleaned without them.
        subset = reference(wan_clean(prompt, fix_encoding=False, normalization=None))
        if subset["ids"] != case["ids"] or subset["cleaned"] != case["cleaned"]:
            case["subset"] = subset
        cases.append(case)
    return {
        "tokenizer": tokenizer_file,
        "max_len": MAX_LEN,
        "pad_id": pad_id,
        "eos_id": eos_id,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases,
    }


def restructure(tok_json):
    """A second layout exercising the other supported pieces: Strip, Replace to "▁",
    a Sequence pre-tokenizer with WhitespaceSplit and a non-splitting Metaspace."""
    d = json.loads(tok_json)
    precompiled = d["normalizer"]["normalizers"][0]
    d["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            precompiled,
            {"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"},
            {"type": "Replace", "pattern": {"String": "ß"}, "content": "ss"},
        ],
    }
    d["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "prepend_scheme": "always",
             "split": False},
        ],
    }
    return json.dumps(d, ensure_ascii=False)


def write_goldens(out_dir, extras):
    corpus = os.path.join(out_dir, "corpus.txt")
    built = {
        # full character coverage: every corpus character is a piece
        "unigram-small": make_tokenizer.convert(make_tokenizer.train_spm(corpus, 1000, 1.0)).to_str(),
        # rare characters left out, so unknown characters occur inside words
        "unigram-ws": restructure(make_tokenizer.convert(make_tokenizer.train_spm(corpus, 600, 0.98)).to_str()),
    }
    for name, text in built.items():
        tok_file = f"{name}.tokenizer.json.xz"
        xz_write(os.path.join(out_dir, tok_file), text.encode("utf-8"))
        write_json(os.path.join(out_dir, f"{name}.json"), goldens_for(Tokenizer.from_str(text), tok_file))
    with open(os.path.join(out_dir, "unigram-ties.tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(HANDMADE, f, ensure_ascii=False, indent=1)
        f.write("\n")
    write_json(os.path.join(out_dir, "unigram-ties.json"),
               goldens_for(Tokenizer.from_str(json.dumps(HANDMADE)), "unigram-ties.tokenizer.json", HANDMADE_PROMPTS))
    for spec in extras:
        name, path = spec.split("=", 1)
        tok_file = os.path.basename(path)
        write_json(os.path.join(out_dir, f"{name}.json"), goldens_for(Tokenizer.from_file(path), tok_file))


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    n_subset = sum("subset" in c for c in obj["cases"])
    print(f"wrote {path}: {len(obj['cases'])} cases, {n_subset} depending on ftfy's NFC or mojibake repair")


# ------------------------------------------------------------------ C tables


def c_str(s):
    return '"' + "".join(f"\\x{b:02x}" for b in s.encode("utf-8")) + '"'


def ranges_of(pred):
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or not pred(chr(cp)):
            continue
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def c_ranges(name, rs):
    lines = [f"const tok_range {name}[] = {{"]
    for i in range(0, len(rs), 6):
        lines.append("    " + " ".join(f"{{0x{a:x}, 0x{b:x}}}," for a, b in rs[i:i + 6]))
    lines.append("};")
    lines.append(f"const int {name}_count = {len(rs)};")
    return "\n".join(lines)


def c_map(name, mapping):
    lines = [f"const tok_cp_map {name}[] = {{"]
    items = sorted(mapping.items())
    for i in range(0, len(items), 4):
        lines.append("    " + " ".join(f"{{0x{cp:x}, {c_str(v)}}}," for cp, v in items[i:i + 4]))
    lines.append("};")
    lines.append(f"const int {name}_count = {len(items)};")
    return "\n".join(lines)


HEADER = """/* {file} - GENERATED by tools/reference/make_token_goldens.py --c-tables; do not edit.
 *
 * {what}
 * Source: Python {py} (unicodedata {ucd}), regex {rx}, ftfy {ftfy}.
 */
#include "tokenizer_internal.h"
"""


def write_html_table(path):
    h5 = html.entities.html5
    names = sorted({k.rstrip(";") for k in h5})
    lines = [HEADER.format(file=os.path.basename(path), py=sys.version.split()[0], ucd=unicodedata.unidata_version,
                           rx=regex.__version__, ftfy=ftfy.__version__,
                           what="HTML named character references: name (without ';'), value, flags (TOK_ENT_SEMI: \"&name;\"\n"
                                " * is a reference, TOK_ENT_BARE: \"&name\" is one too), and the value ftfy gives the all-caps\n"
                                " * spelling \"&NAME;\" (NULL where it does not). Sorted by name (bytes).")]
    lines.append("const tok_html_entity tok_html_entities[] = {")
    entries = []
    as_ftfy = {}  # what the table means for ftfy's lookup, checked against ftfy's own dict
    for name in names:
        semi, bare = (name + ";") in h5, name in h5
        value = h5.get(name + ";", h5.get(name))
        if semi and bare:
            assert h5[name] == h5[name + ";"]
        upper = "NULL"
        if semi and name == name.lower():
            u = "&" + name.upper() + ";"
            if u != "&" + name + ";" and html.unescape(u) == u:
                upper = c_str(value.upper())
                as_ftfy[u] = value.upper()
        if semi:
            as_ftfy["&" + name + ";"] = value
        flags = " | ".join(f for f, on in (("TOK_ENT_SEMI", semi), ("TOK_ENT_BARE", bare)) if on)
        entries.append(f'{{"{name}", {c_str(value)}, {upper}, {flags}}},')
    for i in range(0, len(entries), 3):
        lines.append("    " + " ".join(entries[i:i + 3]))
    lines.append("};")
    lines.append(f"const int tok_html_entities_count = {len(names)};")
    assert as_ftfy == ftfy.chardata.HTML_ENTITIES
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}: {len(names)} entities")


def write_unicode_table(path):
    gcb = {p: regex.compile(r"\p{Grapheme_Cluster_Break=%s}" % p) for p in ("Control", "Extend", "ZWJ",
                                                                              "SpacingMark", "Prepend")}
    parts = [HEADER.format(file=os.path.basename(path), py=sys.version.split()[0], ucd=unicodedata.unidata_version,
                           rx=regex.__version__, ftfy=ftfy.__version__,
                           what="Unicode data for the tokenizer: grapheme-cluster-break classes (UAX #29), the\n"
                                " * whitespace sets of Python's str.isspace and Unicode White_Space (regex \\\\s, Rust\n"
                                " * char::is_whitespace), decimal digits (Python re \\\\d), and ftfy's maps.")]
    parts.append(c_ranges("tok_gcb_control", ranges_of(lambda c: bool(gcb["Control"].match(c)))))
    parts.append(c_ranges("tok_gcb_extend",
                          ranges_of(lambda c: bool(gcb["Extend"].match(c) or gcb["ZWJ"].match(c)))))
    parts.append(c_ranges("tok_gcb_spacing_mark", ranges_of(lambda c: bool(gcb["SpacingMark"].match(c)))))
    parts.append(c_ranges("tok_gcb_prepend", ranges_of(lambda c: bool(gcb["Prepend"].match(c)))))
    parts.append(c_ranges("tok_py_space", ranges_of(str.isspace)))
    parts.append(c_ranges("tok_white_space", ranges_of(lambda c: bool(regex.match(r"\p{White_Space}", c)))))
    assert ranges_of(lambda c: bool(regex.match(r"\s", c))) == ranges_of(lambda c: bool(regex.match(r"\p{White_Space}", c)))
    parts.append(c_ranges("tok_decimal_digit", ranges_of(lambda c: unicodedata.category(c) == "Nd")))
    parts.append(c_map("tok_ftfy_width", ftfy.chardata.WIDTH_MAP))
    parts.append(c_map("tok_ftfy_ligature", ftfy.chardata.LIGATURES))
    c1 = {b: bytes([b]).decode("sloppy-windows-1252") for b in range(0x80, 0xA0)}
    parts.append(c_map("tok_ftfy_c1", c1))
    with open(path, "w") as f:
        f.write("\n\n".join(parts) + "\n")
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "..", "tests", "golden", "tokens"))
    ap.add_argument("--extra", action="append", default=[], help="NAME=path/to/tokenizer.json")
    ap.add_argument("--c-tables", metavar="ENGINE_DIR", help="write the C tables into ENGINE_DIR instead")
    args = ap.parse_args()
    if args.c_tables:
        write_html_table(os.path.join(args.c_tables, "tokenizer_html_table.c"))
        write_unicode_table(os.path.join(args.c_tables, "tokenizer_unicode_table.c"))
    else:
        write_goldens(os.path.normpath(args.out_dir), args.extra)


if __name__ == "__main__":
    main()
