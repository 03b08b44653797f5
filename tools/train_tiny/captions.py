"""Caption grammar of the Auteur-Tiny world, and its held-out evaluation split.

A caption is a *template* with slots, filled from a scene (world.py):
  {C}/{C1}/{C2}  colour word          {S}/{S1}/{S2}  shape noun (synonyms: ball, box, disc...)
  {Ding}/{Ds}/{Dbase}  motion predicate in the form the frame needs ("moving to the right",
                 "slides right", "rise"), modifiers appended ("... and growing")
  {B}, {B2}      background colour names (gradients name both ends)
The template string (slots unfilled, e.g. "the {C} {S} {Ding} on a {B} background") is what
"verbatim" means for the held-out split: HELD_OUT is a seeded choice of 48 single-object
templates (plain or no background) that the training sampler never emits; the evaluation
prompts fill exactly those templates. All their words appear in training through other
templates, so the test measures following an unseen phrasing, not unknown words.
Everything is lower case ASCII with single spaces (the pipeline's text cleaning is the identity).
Choices come from a random.Random (standard library only, so the end-to-end test can import this).
"""
import random

from palette import COLORS, DIRECTIONS, SHAPES

COLOR_WORDS = {"red": ["red"], "green": ["green"], "blue": ["blue"], "yellow": ["yellow"], "white": ["white"],
               "purple": ["purple", "violet"], "orange": ["orange"]}
BG_WORDS = {"black": ["black"], "gray": ["gray", "grey"], "navy": ["navy"], "brown": ["brown"],
            "maroon": ["maroon"], "teal": ["teal"], "olive": ["olive"]}
SHAPE_WORDS = {"circle": [("circle", "circles"), ("ball", "balls"), ("disc", "discs"), ("dot", "dots")],
               "square": [("square", "squares"), ("box", "boxes"), ("block", "blocks")],
               "triangle": [("triangle", "triangles")], "star": [("star", "stars")]}
ADVERBIALS = {
    "right": ["right", "to the right", "rightward", "towards the right"],
    "left": ["left", "to the left", "leftward", "towards the left"],
    "up": ["up", "upward", "upwards", "towards the top"],
    "down": ["down", "downward", "downwards", "towards the bottom"],
    "up-right": ["up and to the right", "up and right", "diagonally up and right", "towards the top right corner"],
    "up-left": ["up and to the left", "up and left", "diagonally up and left", "towards the top left corner"],
    "down-right": ["down and to the right", "down and right", "diagonally down and right",
                   "towards the bottom right corner"],
    "down-left": ["down and to the left", "down and left", "diagonally down and left",
                  "towards the bottom left corner"],
}
VERBS = [("move", "moves", "moving"), ("go", "goes", "going"), ("slide", "slides", "sliding"),
         ("drift", "drifts", "drifting"), ("travel", "travels", "travelling"), ("glide", "glides", "gliding"),
         ("head", "heads", "heading")]
DIRECTION_VERBS = {  # verbs that carry the direction themselves
    "up": [("rise", "rises", "rising"), ("climb", "climbs", "climbing")],
    "down": [("fall", "falls", "falling"), ("drop", "drops", "dropping"), ("sink", "sinks", "sinking")],
}
STILL = [("stay still", "stays still", "staying still"), ("stand still", "stands still", "standing still"),
         ("stay in place", "stays in place", "staying in place"), ("not move", "does not move", "not moving")]
BOUNCE = [("bounce around", "bounces around", "bouncing around"),
          ("bounce off the walls", "bounces off the walls", "bouncing off the walls")]
MODIFIERS = {"grow": [("grow", "grows", "growing"), ("get bigger", "gets bigger", "getting bigger")],
             "shrink": [("shrink", "shrinks", "shrinking"), ("get smaller", "gets smaller", "getting smaller")],
             "spin": [("spin", "spins", "spinning"), ("rotate", "rotates", "rotating")]}
FORMS = {"Dbase": 0, "Ds": 1, "Ding": 2}

SINGLE_FRAMES = [
    "a {C} {S} {Ding}", "the {C} {S} {Ding}", "a {C} {S} {Ds}", "{C} {S} {Ds}", "{C} {S} {Ding}",
    "a {S} in {C} {Ding}", "there is a {C} {S} {Ding}", "a {C} {S} that {Ds}", "video of a {C} {S} {Ding}",
    "a {C} {S}, {Ding}", "a {C} colored {S} {Ding}", "one {C} {S} {Ding}", "watch a {C} {S} {Dbase}",
    "a {C} {S} is {Ding}", "a single {C} {S} {Ds}", "{Ding}, a {C} {S}", "a {S} colored {C} {Ding}",
    "the {S} is {C} and {Ds}", "a {C} {S} can be seen {Ding}", "clip of a {C} {S} {Ding}",
]
PAIR_FRAMES = [
    "a {C1} {S1} {Ding1} and a {C2} {S2} {Ding2}", "a {C1} {S1} {Ds1} while a {C2} {S2} {Ds2}",
    "two shapes: a {C1} {S1} {Ding1} and a {C2} {S2} {Ding2}", "a {C1} {S1} {Ding1}, a {C2} {S2} {Ding2}",
    "there are two shapes, a {C1} {S1} that {Ds1} and a {C2} {S2} that {Ds2}",
    "the {C1} {S1} {Ds1} and the {C2} {S2} {Ds2}",
]
SAME_SHAPE_FRAMES = [  # the two objects share a shape: {P} is the plural noun
    "two {P}, a {C1} one {Ding1} and a {C2} one {Ding2}", "two {P}: the {C1} one {Ds1}, the {C2} one {Ds2}",
]
PLAIN_BG = [" on a {B} background", " over a {B} backdrop", " against a {B} background",
            " on a plain {B} background", " with a {B} background"]
PLAIN_BG_PREFIX = ["on a {B} background, "]
GRADIENT_BG = [" on a {B} to {B2} gradient", " over a gradient from {B} to {B2}",
               " against a {B} and {B2} gradient background"]

N_HELD_OUT = 48
HELD_OUT_SEED = 4242


def single_templates():
    """Every single-object template with a plain or no background (the held-out pool)."""
    out = []
    for f in SINGLE_FRAMES:
        out.append(f)
        out += [f + bg for bg in PLAIN_BG]
        out += [p + f for p in PLAIN_BG_PREFIX]
    return out


def _held_out():
    pool = single_templates()
    return [pool[i] for i in sorted(random.Random(HELD_OUT_SEED).sample(range(len(pool)), N_HELD_OUT))]


HELD_OUT = _held_out()
_HELD_SET = frozenset(HELD_OUT)


def _pick(rng, seq):
    return seq[rng.randrange(len(seq))]


def motion_phrase(rng, obj, form):
    """The predicate for one object ({Ding}/{Ds}/{Dbase}) with its modifiers."""
    k = FORMS[form]
    m = obj["motion"]
    if m == "still":
        phrase = _pick(rng, STILL)[k]
    elif m == "bounce":
        phrase = _pick(rng, BOUNCE)[k]
    elif m in DIRECTION_VERBS and rng.random() < 0.3:
        phrase = _pick(rng, DIRECTION_VERBS[m])[k]
    else:
        phrase = f"{_pick(rng, VERBS)[k]} {_pick(rng, ADVERBIALS[m])}"
    mods = []
    if obj["size_change"] != "none":
        mods.append(obj["size_change"])
    if obj["spin"] != 0.0:
        mods.append("spin")
    for mod in mods:
        words = _pick(rng, MODIFIERS[mod])
        if form == "Ding" and rng.random() < 0.5:
            phrase += f" while {words[2]}"
        else:
            phrase += f" and {words[k]}"
    return phrase


def _articles(text):
    """'a orange' -> 'an orange' (after filling, so templates stay article-agnostic)."""
    words = text.split(" ")
    for i in range(len(words) - 1):
        if words[i] == "a" and words[i + 1][:1] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def fill(template, rng, objects, background):
    """Fill a template's slots from objects (world.py dicts) and a background dict."""
    slots = {}
    for k, o in enumerate(objects):
        sfx = "" if len(objects) == 1 else str(k + 1)
        slots["C" + sfx] = _pick(rng, COLOR_WORDS[o["color"]])
        noun = _pick(rng, SHAPE_WORDS[o["shape"]])
        slots["S" + sfx] = noun[0]
        if k == 0:
            slots["P"] = noun[1]
        for form in FORMS:
            if "{" + form + sfx + "}" in template:
                slots[form + sfx] = motion_phrase(rng, o, form)
    colors = background["colors"]
    slots["B"] = _pick(rng, BG_WORDS[colors[0]])
    slots["B2"] = _pick(rng, BG_WORDS[colors[-1]])
    return _articles(template.format(**slots))


def sample_template(rng, scene):
    """A training template for the scene (never one of HELD_OUT)."""
    objs, bg = scene["objects"], scene["background"]
    while True:
        if len(objs) == 1:
            frame = _pick(rng, SINGLE_FRAMES)
        elif objs[0]["shape"] == objs[1]["shape"] and rng.random() < 0.4:
            frame = _pick(rng, SAME_SHAPE_FRAMES)
        else:
            frame = _pick(rng, PAIR_FRAMES)
        u = rng.random()
        if u < 0.35:
            template = frame
        elif bg["kind"] == "plain":
            template = _pick(rng, PLAIN_BG_PREFIX) + frame if u < 0.45 else frame + _pick(rng, PLAIN_BG)
        else:
            template = frame + _pick(rng, GRADIENT_BG)
        if template not in _HELD_SET:
            return template


def caption(rng, scene):
    """A training caption for the scene: (text, template)."""
    template = sample_template(rng, scene)
    return fill(template, rng, scene["objects"], scene["background"]), template


def eval_prompts(seed=7):
    """The held-out evaluation set: one prompt per HELD_OUT template, single object, balanced over
    colours, shapes and the 8 directions. Returns dicts: prompt, template, color, shape, direction."""
    return _prompt_set(HELD_OUT, seed)


def validation_prompts(seed=11):
    """A validation set built the same way from 48 *training* templates (for choosing sampler
    settings without looking at the held-out prompts)."""
    pool = [t for t in single_templates() if t not in _HELD_SET]
    return _prompt_set(sorted(random.Random(seed).sample(pool, N_HELD_OUT)), seed)


def _prompt_set(templates, seed):
    rng = random.Random(seed)
    colors, dirs = list(COLORS), list(DIRECTIONS)
    out = []
    for i, template in enumerate(templates):
        obj = {"shape": SHAPES[(i // 2) % len(SHAPES)], "color": colors[(3 * i) % len(colors)],
               "motion": dirs[i % len(dirs)], "size_change": "none", "spin": 0.0}
        bg = {"kind": "plain", "colors": [_pick(rng, list(BG_WORDS))]}
        out.append({"prompt": fill(template, rng, [obj], bg), "template": template, "color": obj["color"],
                    "shape": obj["shape"], "direction": obj["motion"]})
    return out

