#!/usr/bin/env python3
"""Write models/tiny-random/: a complete Wan2.1-shaped text-to-video model with random weights.

  python3 tools/make_tiny_model.py [--out models/tiny-random] [--smoke]

Deterministic (fixed seeds, single-threaded tokenizer training), a few seconds on a laptop CPU.
The architectures are the real ones at toy sizes, so every code path of the engine runs:
  tokenizer  SentencePiece Unigram (tools/reference/make_tokenizer.py) trained on a generated
             English caption corpus plus the phrases of Wan's Chinese default negative prompt
  UMT5       d_model 64, 2 heads of d_kv 32, d_ff 128, 2 layers, 32 buckets (HF T5 names)
  DiT        dim 256, 2 heads of 128, ffn 512, 2 layers, freq_dim 256, text_dim 64, text_len 512
  VAE        dim 8, dim_mult [1,2,4,4], z_dim 16, 2 res blocks, the released latent mean/std
Weights are bf16 (random, scaled by tools/reference/ref_init.py so activations stay near unit
size and the decoded video is neither flat nor saturated). The videos are noise-like: the
model exists to test the machinery, not to draw foxes. --smoke runs the reference pipeline once.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "reference"))
import make_tokenizer  # noqa: E402
from ref_dit import dit_tensor_shapes  # noqa: E402
from ref_init import random_weights  # noqa: E402
from ref_io import save_safetensors  # noqa: E402
from ref_umt5 import umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_tensor_shapes  # noqa: E402

SEED = 20250101
VOCAB_TARGET = 1500

# wan/configs/shared_config.py, sample_neg_prompt
NEGATIVE_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
                   "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
                   "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

T5_CFG = {"d_model": 64, "d_kv": 32, "num_heads": 2, "d_ff": 128, "num_layers": 2,
          "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6}
DIT_CFG = {"dim": 256, "ffn_dim": 512, "freq_dim": 256, "num_heads": 2, "num_layers": 2, "in_dim": 16,
           "out_dim": 16, "text_len": 512, "text_dim": 64, "patch_size": [1, 2, 2], "eps": 1e-6}
VAE_CFG = {"dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True], "latents_mean": LATENTS_MEAN, "latents_std": LATENTS_STD}
DEFAULTS = {"width": 64, "height": 64, "frames": 9, "fps": 8, "steps": 4, "guidance_scale": 5.0, "shift": 3.0,
            "sampler": "unipc", "negative_prompt": NEGATIVE_PROMPT}
LIMITS = {"max_width": 256, "max_height": 256, "max_frames": 33, "max_steps": 50, "max_prompt_chars": 2000,
          "size_multiple": 16, "sizes": []}

# word lists for the caption corpus: varied enough for a vocabulary of ~1500 pieces
ADJECTIVES = """
old young small tiny huge giant tall short happy sad angry calm curious playful lonely proud shy brave
fluffy furry shiny rusty wooden metal glass ancient modern futuristic colorful gloomy bright dark misty
foggy sunny rainy snowy windy icy frozen burning glowing sparkling dusty muddy wet dry quiet noisy busy
empty crowded peaceful wild elegant graceful clumsy fast slow heavy light soft rough smooth fragile
mysterious magical abandoned hidden distant nearby enormous delicate vintage retro cheerful sleepy
hungry thirsty tired energetic gentle fierce majestic humble noble strange familiar cozy chilly warm
""".split()
COLORS = """
red orange yellow green blue purple pink white black gray brown golden silver crimson violet turquoise
teal navy beige ivory emerald amber scarlet lavender bronze copper maroon olive cyan magenta indigo
""".split()
NOUNS = """
fox cat dog horse rabbit deer wolf bear tiger lion elephant giraffe zebra monkey panda koala kangaroo
owl eagle hawk parrot penguin swan duck goose chicken rooster pigeon sparrow crow raven butterfly bee
dragonfly spider snail turtle frog lizard snake crocodile dolphin whale shark octopus jellyfish crab
lobster seal otter beaver squirrel hedgehog mouse hamster camel donkey goat sheep cow pig buffalo moose
man woman boy girl child baby grandmother grandfather teenager student teacher doctor nurse farmer
fisherman sailor pilot astronaut soldier knight king queen prince princess wizard witch ninja samurai
pirate cowboy detective scientist painter musician singer dancer drummer guitarist pianist violinist
chef baker waiter gardener mechanic firefighter policeman athlete runner swimmer climber skier surfer
skateboarder cyclist photographer tourist traveler monk priest clown juggler acrobat robot android
cyborg alien ghost vampire zombie dragon unicorn phoenix mermaid giant dwarf elf fairy troll goblin
car truck bus taxi train tram bicycle motorcycle scooter boat ship yacht canoe submarine airplane
helicopter rocket balloon kite drone tractor carriage wagon sled umbrella lantern candle clock mirror
book guitar piano violin trumpet drum camera telescope compass map sword shield crown bottle cup
teapot basket suitcase backpack hat scarf coat dress shoes flower rose tulip sunflower daisy lily
orchid lotus cactus tree oak pine palm willow maple bamboo mushroom leaf branch feather stone crystal
""".split()
VERBS = """
runs walks flies jumps swims dances rests drives floats wanders climbs glides sits plays looks turns
races sleeps spins crawls rolls slides hops gallops marches strolls sprints dives soars hovers drifts
sails paddles rides skates skis surfs waves smiles laughs cries sings shouts whispers reads writes
paints draws cooks bakes eats drinks sniffs watches waits hides searches explores chases follows
carries pushes pulls throws catches kicks lifts opens closes builds breaks fixes cleans washes
""".split()
PREPOSITIONS = "through along over across in into around under beside behind near toward past above below between".split()
PLACES = """
forest jungle desert beach ocean sea lake river waterfall mountain valley canyon cliff cave volcano
glacier island meadow field farm garden park orchard vineyard swamp marsh prairie savanna tundra
city town village street alley avenue bridge tunnel highway harbor port station airport market
bazaar square plaza fountain temple church cathedral castle palace tower lighthouse windmill barn
cabin cottage mansion apartment rooftop balcony kitchen bedroom library museum theater cinema
stadium arena gym school classroom hospital laboratory factory warehouse office restaurant cafe
bakery bar nightclub subway spaceship planet moon galaxy nebula asteroid reef shipwreck ruins
""".split()
TIMES = ["at dawn", "at sunrise", "at sunset", "at dusk", "at night", "at midnight", "in the morning",
         "at noon", "in the afternoon", "in the evening", "in the rain", "in heavy snow", "during a storm",
         "under a full moon", "under the stars", "in autumn", "in spring", "in winter", "in summer",
         "on a foggy day", "on a windy day", "after the rain", "before the storm", "in the year 1920",
         "in the distant future", "in a dream"]
STYLES = ["cinematic lighting", "shot on 35mm film", "slow motion", "aerial view", "close up", "wide angle shot",
          "soft focus", "high detail", "warm colors", "cold blue tones", "watercolor style", "oil painting",
          "anime style", "pixel art", "claymation", "documentary footage", "handheld camera", "tracking shot",
          "golden hour light", "dramatic shadows", "pastel colors", "time lapse", "4k, sharp details",
          "black and white", "vivid saturated colors", "shallow depth of field", "drone footage",
          "first person view", "long exposure", "macro photography", "studio lighting", "neon glow",
          "volumetric light", "film grain", "hyperrealistic", "low angle", "bird's eye view", "8k resolution"]
NUMBERS = "one two three four five six seven eight nine ten twelve twenty hundred".split()
ADVERBS = """
slowly quickly gently softly quietly loudly happily sadly calmly carefully proudly lazily gracefully
suddenly steadily silently eagerly nervously playfully boldly smoothly endlessly peacefully wildly
""".split()
MATERIALS = """
snow sand dust smoke steam fire ice water mud grass moss sawdust confetti glitter petals leaves
feathers bubbles sparks ashes pebbles seashells coins marbles ribbons balloons lanterns candles
paper silk velvet wool leather cotton denim marble granite concrete brick timber copper steel gold
bread cheese apples oranges lemons cherries grapes strawberries pumpkins carrots tomatoes noodles
rice soup coffee tea chocolate cookies cake honey sugar salt pepper flour butter milk popcorn
""".split()
CITIES = """
Paris London Tokyo Kyoto Beijing Shanghai Venice Rome Madrid Lisbon Berlin Vienna Prague Istanbul
Cairo Marrakesh Nairobi Mumbai Delhi Bangkok Hanoi Seoul Sydney Auckland Reykjavik Oslo Helsinki
Moscow Dubai Havana Lima Quito Santiago Toronto Chicago Seattle Boston Montreal Amsterdam Dublin
""".split()
MOODS = """
joy sorrow wonder mystery nostalgia hope fear serenity tension excitement solitude freedom harmony
chaos romance adventure silence warmth melancholy triumph curiosity innocence danger bliss
""".split()


def _noun_phrase(rng):
    """(phrase, plural): 'an old red fox', 'three tiny wolves'..."""
    words = [rng.choice(["a", "the", "one", rng.choice(NUMBERS)])]
    words += rng.sample(ADJECTIVES, rng.randint(0, 2))
    if rng.random() < 0.5:
        words.append(rng.choice(COLORS))
    words.append(rng.choice(NOUNS))
    plural = words[0] in NUMBERS and words[0] != "one"
    if plural:
        noun = words[-1]
        words[-1] = noun[:-1] + "ies" if noun.endswith("y") and noun[-2] not in "aeiou" else \
            noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
    elif words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    return " ".join(words), plural


def _clause(rng):
    subject, plural = _noun_phrase(rng)
    verb = rng.choice(VERBS)
    return f"{subject} {_base(verb) if plural else verb}"


def _base(verb):
    """'runs' -> 'run', 'flies' -> 'fly', 'watches' -> 'watch'."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "xes", "sses")):
        return verb[:-2]
    return verb[:-1]


def _ing(verb):
    """'runs' -> 'running', 'dances' -> 'dancing', 'flies' -> 'flying' (good enough for captions)."""
    stem = _base(verb)
    if stem.endswith("e") and not stem.endswith("ee"):
        stem = stem[:-1]
    elif len(stem) <= 4 and stem[-1] in "nptgm" and stem[-2] in "aiou" and stem[-3] not in "aeiou":
        stem += stem[-1]
    return stem + "ing"


def caption_corpus(n_lines, seed):
    """Deterministic English captions, plus Wan's default negative prompt and its phrases."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        s = f"{_clause(rng)} {rng.choice(PREPOSITIONS)} the " \
            f"{' '.join(rng.sample(ADJECTIVES, rng.randint(0, 1)) + [rng.choice(PLACES)])} {rng.choice(TIMES)}"
        if rng.random() < 0.3:
            s += f" while {_clause(rng)} nearby"
        if rng.random() < 0.2:
            s += f" in {rng.choice(CITIES)}"
        if rng.random() < 0.3:
            s += f", with {rng.choice(MATERIALS)} and {rng.choice(MATERIALS)} everywhere"
        if rng.random() < 0.4:
            s += f", {rng.choice(ADVERBS)} {_ing(rng.choice(VERBS))}, a feeling of {rng.choice(MOODS)}"
        text = ", ".join([s] + rng.sample(STYLES, rng.randint(0, 3)))
        lines.append(text[0].upper() + text[1:] + ".")
    lines += [NEGATIVE_PROMPT] + NEGATIVE_PROMPT.split("，")
    return lines


def save_weights(path, shapes, seed, what):
    w = {k: v.to(torch.bfloat16).contiguous() for k, v in random_weights(shapes, seed).items()}
    save_safetensors(path, w, {"generator": "tools/make_tiny_model.py", "model": "tiny-random", "part": what})
    return sum(v.numel() for v in w.values())


def build(out):
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(caption_corpus(12000, SEED)) + "\n")
        tok = make_tokenizer.convert(make_tokenizer.train_spm(corpus, VOCAB_TARGET, 1.0))
    tok.save(os.path.join(out, "tokenizer.json"))
    t5_cfg = dict(vocab_size=tok.get_vocab_size(), **T5_CFG)
    if DIT_CFG["text_dim"] != t5_cfg["d_model"]:
        raise ValueError("text_dim must equal the UMT5 d_model")

    counts = {
        "umt5": save_weights(os.path.join(out, "umt5.safetensors"), umt5_tensor_shapes(t5_cfg), SEED + 1, "umt5"),
        "dit": save_weights(os.path.join(out, "dit.safetensors"), dit_tensor_shapes(DIT_CFG), SEED + 2, "dit"),
        "vae": save_weights(os.path.join(out, "vae.safetensors"), vae_tensor_shapes(VAE_CFG), SEED + 3, "vae"),
    }
    manifest = {
        "format": "auteur-model/1", "name": "tiny-random",
        "description": "Wan2.1 text-to-video architecture at toy size with random bf16 weights, for tests "
                       "(made by tools/make_tiny_model.py; the output is noise-like by design)",
        "tokenizer": "tokenizer.json",
        "text_encoder": {"file": "umt5.safetensors", "config": t5_cfg},
        "dit": {"file": "dit.safetensors", "config": DIT_CFG},
        "vae": {"file": "vae.safetensors", "config": VAE_CFG},
        "defaults": DEFAULTS,
        "limits": LIMITS,
    }
    with open(os.path.join(out, "auteur-model.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{out}: vocab {t5_cfg['vocab_size']}, parameters " +
          ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in counts.items()) + f", {total / 2**20:.2f} MiB")


def smoke(out):
    import wan_ref
    t0 = time.time()
    model = wan_ref.WanModelFolder(out)
    r = wan_ref.generate(model, "A red fox runs through fresh snow in a quiet forest at dawn.", seed=1)
    v = r["video"]
    print(f"smoke: video {list(v.shape)} mean {v.mean():.3f} std {v.std():.3f}, "
          f"{100 * (v.abs() >= 1).float().mean():.1f}% clamped, {time.time() - t0:.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "tiny-random"))
    ap.add_argument("--smoke", action="store_true", help="run the reference pipeline once on the result")
    a = ap.parse_args()
    torch.set_num_threads(2)
    build(a.out)
    if a.smoke:
        smoke(a.out)


if __name__ == "__main__":
    main()
