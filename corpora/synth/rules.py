"""How the demo corpora get their words, their voices' prosody and their labels.

Every utterance draws five controls, each uniform in [-1, 1]:
    rate r, pitch level p, pitch range g, loudness l   -> espeak-ng's rate / pitch / range / volume
    lexical sentiment s                                -> which words the sentence uses
The labels are fixed functions of the controls plus a little noise (sigma 0.2 on the 1-7 scale), so text
carries valence and audio carries arousal and dominance, as in real data:

    arousal   = 4 + 1.0 r + 0.6 p + 0.3 g + 1.0 l + e       (faster, higher, livelier, louder -> more aroused)
    dominance = 4 + 1.2 l - 0.6 p + 0.3 r + e               (louder and lower-pitched -> more dominant)
    valence   = 4 + 1.8 s + 0.3 g + e                       (mostly the words, a little pitch liveliness)

clipped to [1, 7]. IEMOCAP-style labels put the same values on the 1-5 scale as the mean of three simulated
evaluators' integer ratings, and derive the consensus category from word choice and arousal (see
`iemocap_category`). docs/corpora.md repeats these rules; tests check them on generated audio.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpora.synth.espeak import Prosody

POSITIVE = ("wonderful", "great", "lovely", "beautiful", "fantastic", "excellent", "brilliant", "pleasant",
            "delightful", "amazing", "happy", "perfect")
NEGATIVE = ("terrible", "awful", "horrible", "dreadful", "miserable", "disgusting", "painful", "boring",
            "ugly", "hopeless", "sad", "annoying")
NEUTRAL = ("ordinary", "usual", "normal", "regular", "typical", "average", "plain", "standard", "simple",
           "quiet", "long", "early")
NOUNS = ("garden", "meeting", "weekend", "movie", "dinner", "trip", "project", "story", "concert", "class",
         "job", "house", "game", "book", "show", "morning", "party", "neighbour", "lecture", "holiday")
# each template has three adjective slots {a0} {a1} {a2} and noun slots {n0} {n1}
TEMPLATES = (
    "The {n0} was {a0}, and honestly the {n1} felt {a1} and {a2}.",
    "I think this {n0} is {a0}, the {n1} was {a1}, and everything was {a2}.",
    "Yesterday my {n0} was so {a0}, a {a1} {n1}, really {a2}.",
    "We talked about the {a0} {n0} and the {a1} {n1}, it was {a2}.",
    "You know, that {n0} seemed {a0} to me, {a1} and a little {a2}.",
    "Our {n0} turned out {a0}, the {n1} was {a1}, quite {a2} overall.",
)
SENTIMENT_WORDS = {**{w: 1 for w in POSITIVE}, **{w: -1 for w in NEGATIVE}}


@dataclass(frozen=True)
class Controls:
    rate: float
    pitch: float
    range: float
    loudness: float
    sentiment: float  # realised lexical sentiment of the sentence, in [-1, 1]


def lexical_sentiment(text: str) -> float:
    """Mean polarity (+1 positive, -1 negative, 0 neutral) of the text's adjectives from the lexicon above."""
    words = [w.strip(".,!?").lower() for w in text.split()]
    adjs = [SENTIMENT_WORDS.get(w, 0) for w in words if w in SENTIMENT_WORDS or w in NEUTRAL]
    return sum(adjs) / len(adjs) if adjs else 0.0


def make_sentence(rng: np.random.Generator, target_sentiment: float) -> str:
    """A sentence whose three adjective slots realise `target_sentiment` as closely as thirds allow."""
    k = int(round(abs(target_sentiment) * 3))  # how many slots carry the polarity
    polar = POSITIVE if target_sentiment >= 0 else NEGATIVE
    slots = [polar] * k + [NEUTRAL] * (3 - k)
    rng.shuffle(slots)
    adjs, used = [], set()
    for pool in slots:
        word = pool[rng.integers(len(pool))]
        while word in used:
            word = pool[rng.integers(len(pool))]
        used.add(word)
        adjs.append(word)
    n0, n1 = rng.choice(len(NOUNS), size=2, replace=False)
    tpl = TEMPLATES[rng.integers(len(TEMPLATES))]
    return tpl.format(a0=adjs[0], a1=adjs[1], a2=adjs[2], n0=NOUNS[n0], n1=NOUNS[n1])


def draw_utterance(rng: np.random.Generator, two_sentence_prob: float = 0.35) -> tuple[str, Controls]:
    """Text and controls of one utterance; some utterances have two sentences, for a spread of durations."""
    r, p, g, l, s = rng.uniform(-1.0, 1.0, size=5)
    text = make_sentence(rng, s)
    if rng.random() < two_sentence_prob:
        text += " " + make_sentence(rng, s)
    return text, Controls(rate=r, pitch=p, range=g, loudness=l, sentiment=lexical_sentiment(text))


def to_prosody(c: Controls) -> Prosody:
    """Controls -> espeak-ng parameters (volume stays <= 120: louder settings clip)."""
    return Prosody(rate=int(round(170 + 60 * c.rate)), pitch=int(round(50 + 20 * c.pitch)),
                   range=int(round(50 + 35 * c.range)), volume=int(round(80 + 40 * c.loudness)))


def attribute_scores(c: Controls, rng: np.random.Generator, noise: float = 0.2) -> dict[str, float]:
    """Arousal, dominance, valence on the MSP-Podcast 1-7 scale (the rules in the module docstring)."""
    e = rng.normal(0.0, noise, size=3)
    act = 4 + 1.0 * c.rate + 0.6 * c.pitch + 0.3 * c.range + 1.0 * c.loudness + e[0]
    dom = 4 + 1.2 * c.loudness - 0.6 * c.pitch + 0.3 * c.rate + e[1]
    val = 4 + 1.8 * c.sentiment + 0.3 * c.range + e[2]
    return {k: float(np.clip(v, 1.0, 7.0)) for k, v in (("act", act), ("dom", dom), ("val", val))}


def msp_emo_class(scores: dict[str, float]) -> str:
    """An MSP-Podcast EmoClass letter from the scores: A(ngry) S(ad) H(appy) N(eutral), X(no agreement)."""
    a, v = scores["act"], scores["val"]
    if v >= 4.8:
        return "H"
    if v <= 3.2:
        return "A" if a >= 4.5 else "S"
    return "N" if abs(a - 4) < 1.5 else "X"


def five_point_ratings(scores: dict[str, float], rng: np.random.Generator, raters: int = 3) -> dict[str, list[int]]:
    """1-7 scores -> `raters` simulated evaluators' integer ratings on IEMOCAP's 1-5 scale."""
    out = {}
    for k, v in scores.items():
        five = 1 + (v - 1) * 4 / 6
        out[k] = [int(r) for r in np.clip(np.rint(five + rng.normal(0, 0.4, size=raters)), 1, 5)]
    return out


def consensus(ratings: dict[str, list[int]]) -> dict[str, float]:
    """The consensus label IEMOCAP prints: the evaluators' mean, 4 decimals (values like 3.3333)."""
    return {k: float(round(float(np.mean(v)), 4)) for k, v in ratings.items()}


def iemocap_category(scores: dict[str, float], sentiment: float, rng: np.random.Generator) -> str:
    """Consensus code from word choice and arousal: positive words -> exc (aroused) / hap; negative words ->
    ang (aroused) / sad (calm) / fru (in between); neutral words -> neu; 5% 'xxx' (no majority), as real."""
    if rng.random() < 0.05:
        return "xxx"
    a = scores["act"]
    if sentiment >= 1 / 3 - 1e-9:
        return "exc" if a >= 4.3 else "hap"
    if sentiment <= -1 / 3 + 1e-9:
        return "ang" if a >= 4.5 else ("sad" if a < 3.5 else "fru")
    return "neu"
