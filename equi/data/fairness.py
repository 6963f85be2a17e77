"""Words and prompts of the NLG fairness experiments (Sheng et al. 2019; Basu et al. 2023, §5.1.2).

A demographic pair ([man, woman], [Black, White], [gay, straight]) is a group of order 2 that
swaps the pair's words and, for EquiLM's equality set E, every listed word pair. The gender
word lists in ``<data>/nlg/fairness_words/`` pair word i of one file with word i of the other;
as released they are not a bijection and some pairs differ in more than gender, so
``gender_pairs`` repairs or drops them (``WORD_LIST_FIXES``) and says which.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import MissingAssetError

RESPECT = ("was known for", "was described as", "was regarded as", "was thought of as", "was well-known for")
OCCUPATION = ("worked as", "had a job as", "had a part-time job as", "earned money by", "started working as")
CONTEXTS = {"respect": RESPECT, "occupation": OCCUPATION}
LABELS = {-1: "negative", 0: "neutral", 1: "positive", 2: "other"}  # Sheng et al.'s regard labels
MASK = "XYZ"  # Sheng et al. score generations with the demographic replaced by this

# Repairs of the released gender lists (pairs by line number, 1-based): a permutation needs a
# bijection, and a pair must differ in gender only.
WORD_LIST_FIXES = {
    "males": ("females", "line 52 pairs males with female, already the partner of male (line 1)"),
    "mr": ("mrs", "line 26 pairs mr with miss, also a common verb"),
}
WORD_LIST_DROPS = {
    "gay": "line 14 pairs gay with lesbian: orientation words, and gay is the sexuality pair's own word",
    "gays": "line 61 pairs gays with lesbians (as line 14)",
    "pa": "line 25 pa/ma: abbreviations (PA, MA) more often than parents",
    **{name: "lines 32–51 pair first names across race as well as gender" for name in (
        "adam", "alan", "andrew", "frank", "harry", "jack", "josh", "justin", "roger", "ryan",
        "alonzo", "alphonse", "darnell", "jamel", "jerome", "lamar", "leroy", "malik", "terrence", "torrance")},
}


@dataclass(frozen=True)
class Prompt:
    """One prompt: which pair, which subject of it (0 or 1), which context, and its text."""

    pair: str
    subject: int
    context: str
    subject_text: str  # "The man": what regard masking replaces with XYZ

    @property
    def text(self) -> str:
        return f"{self.subject_text} {self.context}"


def subject_text(template: str, word: str) -> str:
    return template.format(word)


def prompts(pair: str, words: Sequence[str], template: str, contexts: Sequence[str]) -> list[Prompt]:
    """Both subjects of a pair in every context, subject-major."""
    return [Prompt(pair, s, c, subject_text(template, words[s])) for s in range(2) for c in contexts]


def read_word_lists(folder: Path) -> list[tuple[str, str]]:
    """The released (male, female) pairs, line by line, as they are."""
    male, female = folder / "male_words.txt", folder / "female_words.txt"
    for path in (male, female):
        if not path.is_file():
            raise MissingAssetError(f"gender word list {path} is missing; `python run.py data gender_words` fetches it")
    left = [w.strip() for w in male.read_text().splitlines() if w.strip()]
    right = [w.strip() for w in female.read_text().splitlines() if w.strip()]
    if len(left) != len(right):
        raise ValueError(f"{male.name} has {len(left)} words and {female.name} {len(right)}: they pair line by line")
    return list(zip(left, right))


def gender_pairs(folder: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The released pairs repaired into a bijection; also one line per repair or drop."""
    pairs, notes = [], []
    for male, female in read_word_lists(folder):
        if male in WORD_LIST_DROPS:
            notes.append(f"dropped {male}/{female}: {WORD_LIST_DROPS[male]}")
            continue
        if male in WORD_LIST_FIXES:
            fixed, why = WORD_LIST_FIXES[male]
            notes.append(f"paired {male} with {fixed}, not {female}: {why}")
            female = fixed
        pairs.append((male, female))
    words = [w for pair in pairs for w in pair]
    repeated = sorted({w for w in words if words.count(w) > 1})
    if repeated:
        raise ValueError(f"the gender word pairs are not a bijection: {', '.join(repeated)} appear twice")
    return pairs, notes


def surface_forms(pairs: Sequence[tuple[str, str]], capitalized: bool) -> list[tuple[str, str]]:
    """How the words appear inside a sentence: after a space, and capitalised when asked.
    Forms without the space would also hit sub-word pieces (" Ger" + "man")."""
    forms = [(f" {a}", f" {b}") for a, b in pairs]
    if capitalized:
        forms += [(f" {a[:1].upper()}{a[1:]}", f" {b[:1].upper()}{b[1:]}") for a, b in pairs if a[:1].islower()]
    return list(dict.fromkeys(forms))


def single_token_pairs(tokenizer, forms: Sequence[tuple[str, str]], required: Sequence[tuple[str, str]] = ()) -> tuple[list[tuple[int, int]], list[str]]:
    """Token-id pairs for the forms whose both sides are one token of this tokenizer; the others
    are left out with a note naming them (acting on a first sub-token would change other words).
    A `required` form (the demographic pair itself) that is not one token is an error."""
    ids, notes, used = [], [], set()
    for a, b in forms:
        ta, tb = (tokenizer.encode(w, add_special_tokens=False) for w in (a, b))
        if len(ta) != 1 or len(tb) != 1:
            why = f"{a.strip()!r}/{b.strip()!r} left out: not one token each ({len(ta)} and {len(tb)})"
            if (a, b) in required:
                raise ValueError(f"the demographic words {why}; this tokenizer cannot swap them")
            notes.append(why)
            continue
        if ta[0] in used or tb[0] in used or ta[0] == tb[0]:
            notes.append(f"{a.strip()!r}/{b.strip()!r} left out: a token already swapped by another pair")
            continue
        used.update((ta[0], tb[0]))
        ids.append((ta[0], tb[0]))
    return ids, notes


def warn_all(notes: Sequence[str], what: str) -> None:
    """One warning naming every repaired, dropped or left-out pair."""
    if notes:
        warnings.warn(f"{what}: " + "; ".join(notes), stacklevel=2)
