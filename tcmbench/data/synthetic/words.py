"""The built-in vocabulary of synthtext-mini.

A fixed list keeps generation offline and deterministic. Common English
words of 2-10 letters look like the shop signs and street names of scene
text benchmarks; numbers add digit shapes. Only letters and digits are used,
so every glyph comes from the one embedded font and the word box derived
from its metrics fits every word the same way.
"""

from __future__ import annotations

import numpy as np

WORDS: tuple[str, ...] = tuple(
    """
    about above after again air all also always and animal another answer any
    area around away back bank bar base beach bed best better big bird black
    blue boat body book both box boy bread bridge bring brown build bus but buy
    cafe call came can car card care carry cat center change chair cheap check
    child city class clean clear close coffee cold color come cool corner could
    country cover cross cut dance dark day deep door down drink drive drop dry
    during each early earth east easy eat end enter even ever every exit eye
    face fact fair fall family far farm fast field fill final find fine fire
    first fish five floor food foot for form four free fresh friend from front
    full game garden gate gift girl give glass gold good great green ground
    group grow hair half hall hand happy hard head hear heart heat help here
    high hill hold home hope horse hot hotel hour house how idea into island
    just keep kind king kitchen know lake land large last late learn left less
    letter life light line list little live long look love low main make man
    many map market may meat meet menu middle milk mind money moon more morning
    mother mountain move much music must name near never new news next night
    north now number office old once only open order other out over page paint
    paper park part party pass past people pizza place plan plant play point
    police post power press price print public push queen quick quiet radio
    rain read ready real red rest rice right river road rock room round rule
    run safe sale salt same school sea seat second see sell send service seven
    shop short show side sign simple sing six sleep slow small snow soft some
    song soon sound south space speed sport spring square stand star start
    station stay step still stop store story street strong study summer sun
    table take talk taxi tea team ten than that their them then there these
    thing think this three time today together town toy train travel tree true
    turn two under until upon very view village visit voice wait walk wall warm
    wash watch water way welcome well west what wheel when where which white
    who why wide wild will wind window winter with wood word work world write
    yard year yellow yes young zone
    """.split()  # noqa: SIM905 (a word list reads best as a block of text)
)

# Word-case styles and how often each is drawn: signs use all three.
CASE_STYLES: tuple[str, ...] = ("lower", "title", "upper")
CASE_PROBABILITIES: tuple[float, ...] = (0.4, 0.35, 0.25)

NUMBER_PROBABILITY = 0.12


def sample_word(rng: np.random.Generator) -> str:
    """One word: a vocabulary word in a random case, or a 1-4 digit number."""
    if rng.random() < NUMBER_PROBABILITY:
        digits = int(rng.integers(1, 5))
        return str(int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits)))
    word = WORDS[int(rng.integers(len(WORDS)))]
    style = CASE_STYLES[int(rng.choice(len(CASE_STYLES), p=CASE_PROBABILITIES))]
    if style == "upper":
        return word.upper()
    if style == "title":
        return word.capitalize()
    return word
