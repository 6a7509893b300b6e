"""Facts a seller's one-line prompt states, read with rules: brand, model, colour, size..."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from intellipost.ai_content.categories import KeywordMatch, match_builtin
from intellipost.ai_content.quality import FILLER, find_contact_data, find_spam
from intellipost.ai_content.schemas import Attribute
from intellipost.ai_content.vocabulary import (
    BRAND_BY_FOLDED,
    BRAND_LINES,
    COLOUR_BY_KEY,
    COLOUR_WORDS,
    CONDITION_NAMES,
    CONDITION_PHRASES,
    CONDITION_WORDS,
    GENDER_NAMES,
    GENDER_WORDS,
    JOINERS,
    MODEL_WORDS,
    SIZE_WORDS,
    Colour,
    Token,
    fold,
    language_scores,
    tokenize,
)

SIZE = re.compile(
    r"(?<!\w)(talles?|tallas?|tamanho|tam\.?|size|n[uú]mero|nro\.?|n[°º])\s*:?\s*"
    r"(\d{1,2}(?:[.,]5)?|xxxl|xxl|xl|xs|xxs|s|m|l|[uú]nico)(?!\w)",
    re.IGNORECASE,
)
CAPACITY = re.compile(
    r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?(gb|tb|mb|ml|cc|l|lt|lts|litros?|litres?|liters?)(?!\w)",
    re.IGNORECASE,
)
SCREEN = re.compile(
    r"(?<![\w.,])(\d{2}(?:[.,]\d)?)\s?(\"|”|''|pulgadas|pulg|polegadas|pol|inch(?:es)?)(?!\w)",
    re.IGNORECASE,
)
RAM_WORD = re.compile(r"^\s*(de\s+)?ram\b", re.IGNORECASE)
# A clause ends at punctuation, except the decimal mark inside a number ("42,5", "1.5").
CLAUSE_BREAK = re.compile(r"[;!?\n]|[.,](?!\d)|(?<!\d)[.,]")
UNITS = {"gb": "GB", "tb": "TB", "mb": "MB", "ml": "mL", "cc": "mL"}


@dataclass(frozen=True, slots=True)
class Facts:
    prompt: str
    language: str | None
    keyword: KeywordMatch | None
    lead: tuple[str, ...]  # the seller's own words for the product, before the brand
    brand: str | None = None
    model: str | None = None
    colour: Colour | None = None
    size: str | None = None
    capacity: str | None = None
    ram: str | None = None
    screen: str | None = None
    condition: str | None = None
    gender: str | None = None
    details: tuple[str, ...] = field(default=())

    def attributes(self, language: str) -> list[Attribute]:
        """The facts as MercadoLibre attributes, values in the listing's language."""
        values: list[tuple[str, str | None]] = [
            ("BRAND", self.brand),
            ("MODEL", self.model),
            ("COLOR", self.colour.value_name(language) if self.colour else None),
            ("SIZE", self.size),
            ("GENDER", GENDER_NAMES[language][self.gender] if self.gender else None),
            (self._capacity_attribute(), self.capacity),
            ("RAM", self.ram),
            ("DISPLAY_SIZE", self.screen),
            (
                "ITEM_CONDITION",
                CONDITION_NAMES[language][self.condition] if self.condition else None,
            ),
        ]
        return [Attribute(id=key, value_name=value) for key, value in values if value]

    def _capacity_attribute(self) -> str:
        if self.keyword is not None and self.keyword.category.capacity_attribute:
            return self.keyword.category.capacity_attribute
        unit = (self.capacity or "").rsplit(" ", 1)[-1]
        return "STORAGE_CAPACITY" if unit in {"GB", "TB", "MB"} else "CAPACITY"


def extract(prompt: str) -> Facts:
    tokens = tokenize(prompt)
    used: set[int] = set()
    evidence: list[str | None] = []

    keyword = match_builtin(prompt)
    noun_span: set[int] = set()
    if keyword is not None:
        noun_span = set(range(keyword.position, keyword.position + len(keyword.written.split())))
        evidence.append(keyword.language)

    size = _size(prompt, tokens, used, evidence)
    capacity, ram = _capacities(prompt, tokens, used)
    screen = _screen(prompt, tokens, used)
    condition = _condition(prompt, tokens, used, evidence)
    gender = _lookup(tokens, GENDER_WORDS, used, evidence)
    colour_key = _lookup(tokens, COLOUR_WORDS, used, evidence)
    taken = used | noun_span
    brand, model, brand_at = _brand_and_model(prompt, tokens, taken)
    used |= taken - noun_span

    lead = _lead(prompt, tokens, used, brand_at)
    return Facts(
        prompt=prompt,
        language=_language(prompt, evidence),
        keyword=keyword,
        lead=tuple(tokens[i].text for i in lead),
        brand=brand,
        model=model,
        colour=COLOUR_BY_KEY[colour_key] if colour_key else None,
        size=size,
        capacity=capacity,
        ram=ram,
        screen=screen,
        condition=condition,
        gender=gender,
        details=tuple(_details(prompt, tokens, used | noun_span | set(lead))),
    )


def _mark(tokens: list[Token], start: int, end: int, used: set[int]) -> None:
    used.update(i for i, t in enumerate(tokens) if t.start < end and t.end > start)


def _size(
    prompt: str, tokens: list[Token], used: set[int], evidence: list[str | None]
) -> str | None:
    match = SIZE.search(prompt)
    if match is None:
        return None
    _mark(tokens, match.start(), match.end(), used)
    word = fold(match.group(1)).rstrip(".s")
    evidence.append(SIZE_WORDS.get(word))
    value = match.group(2)
    if any(c.isdigit() for c in value):
        return value
    if fold(value) == "unico":
        return "Único"
    return value.upper()


def _capacities(prompt: str, tokens: list[Token], used: set[int]) -> tuple[str | None, str | None]:
    capacity = ram = None
    for match in CAPACITY.finditer(prompt):
        unit = match.group(2).lower()
        value = f"{match.group(1)} {UNITS.get(unit, 'L')}"
        tail = RAM_WORD.match(prompt[match.end() :])
        if tail and ram is None:
            ram = value
            _mark(tokens, match.start(), match.end() + tail.end(), used)
        elif not tail and capacity is None:
            capacity = value
            _mark(tokens, match.start(), match.end(), used)
    return capacity, ram


def _screen(prompt: str, tokens: list[Token], used: set[int]) -> str | None:
    match = SCREEN.search(prompt)
    if match is None:
        return None
    _mark(tokens, match.start(), match.end(), used)
    return f'{match.group(1).replace(",", ".")}"'


def _condition(
    prompt: str, tokens: list[Token], used: set[int], evidence: list[str | None]
) -> str | None:
    folded = fold(prompt)
    for phrase, (condition, language) in CONDITION_PHRASES.items():
        at = re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", folded)
        if at:
            _mark(tokens, at.start(), at.end(), used)
            evidence.append(language)
            return condition
    return _lookup(tokens, CONDITION_WORDS, used, evidence)


def _lookup(
    tokens: list[Token],
    table: dict[str, tuple[str, str | None]],
    used: set[int],
    evidence: list[str | None],
) -> str | None:
    for i, token in enumerate(tokens):
        if i in used or token.folded not in table:
            continue
        value, language = table[token.folded]
        used.add(i)
        evidence.append(language)
        return value
    return None


def _brand_and_model(
    prompt: str, tokens: list[Token], taken: set[int]
) -> tuple[str | None, str | None, int | None]:
    """The first known brand (or product line naming one) and the model words after it."""
    for i, token in enumerate(tokens):
        if token.folded in BRAND_LINES:
            # "iPhone" names the product and its maker at once.
            maker = BRAND_LINES[token.folded][0]
            return maker, _model(prompt, tokens, i, taken), i
        if i in taken:
            continue
        for width in (3, 2, 1):
            phrase = " ".join(t.folded for t in tokens[i : i + width])
            if len(tokens[i : i + width]) == width and phrase in BRAND_BY_FOLDED:
                taken.update(range(i, i + width))
                return BRAND_BY_FOLDED[phrase], _model(prompt, tokens, i + width, taken), i
    # An unknown brand: a capitalised word right after the product's name ("Mochila Totto").
    for i, token in enumerate(tokens[1:], start=1):
        if i - 1 in taken and i not in taken and _could_be_brand(prompt, tokens, i):
            taken.add(i)
            return token.text, _model(prompt, tokens, i + 1, taken), i
        if i - 1 not in taken:
            break
    return None, None, None


def _could_be_brand(prompt: str, tokens: list[Token], i: int) -> bool:
    token = tokens[i]
    return (
        token.text[:1].isupper()
        and token.text.isalpha()
        and len(token.text) >= 2
        and token.folded not in JOINERS
        and not _separated(prompt, tokens[i - 1], token)
    )


def _model(prompt: str, tokens: list[Token], start: int, taken: set[int]) -> str | None:
    parts: list[str] = []
    j = start
    while j < len(tokens) and len(parts) < 5:
        token = tokens[j]
        if j in taken and token.folded not in BRAND_LINES:
            break
        if j > start and _separated(prompt, tokens[j - 1], token):
            break
        if j == start and j > 0 and _separated(prompt, tokens[j - 1], token):
            break
        if token.folded in JOINERS or _is_other_fact(token):
            break
        has_digit = any(c.isdigit() for c in token.text)
        if not (
            has_digit
            or token.folded in MODEL_WORDS
            or token.folded in BRAND_LINES
            or token.text[:1].isupper()
        ):
            break
        if token.folded in BRAND_LINES:
            parts.append(BRAND_LINES[token.folded][1])
        elif any(c.isupper() for c in token.text):
            parts.append(token.text)
        elif has_digit:
            parts.append(token.text.upper())
        else:
            parts.append(token.text.capitalize())
        taken.add(j)
        j += 1
    return " ".join(parts) or None


def _is_other_fact(token: Token) -> bool:
    folded = token.folded.rstrip(".")
    return (
        folded in COLOUR_WORDS
        or folded in CONDITION_WORDS
        or folded in GENDER_WORDS
        or folded in SIZE_WORDS
        or folded in {"ram", "gb", "tb", "pulgadas", "polegadas"}
        or bool(CAPACITY.fullmatch(token.text))
    )


def _separated(prompt: str, left: Token, right: Token) -> bool:
    return bool(re.search(r"[,;:()/|!?\n]|\.\s", prompt[left.end : right.start]))


def _lead(prompt: str, tokens: list[Token], used: set[int], brand_at: int | None) -> list[int]:
    """The seller's words before the brand or the first fact: "Mesa de madera para comedor"."""
    lead: list[int] = []
    for i, token in enumerate(tokens[:6]):
        if i == brand_at or i in used or _is_other_fact(token):
            break
        if i > 0 and _separated(prompt, tokens[i - 1], token):
            break
        if any(c.isdigit() for c in token.text) and lead:
            break
        lead.append(i)
    while lead and tokens[lead[-1]].folded in JOINERS:
        lead.pop()
    return [i for i in lead if not FILLER.fullmatch(tokens[i].folded)]


def _language(prompt: str, evidence: list[str | None]) -> str | None:
    counts: Counter[str] = Counter(e for e in evidence if e)
    counts.update(language_scores(prompt))
    ranked = counts.most_common()
    if not ranked or ranked[0][1] == 0:
        return None
    if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return ranked[0][0]


def _details(prompt: str, tokens: list[Token], used: set[int]) -> list[str]:
    """Clauses that say more than the facts already read ("con caja y cargador")."""
    out: list[str] = []
    start = 0
    bounds = [m.start() for m in CLAUSE_BREAK.finditer(prompt)] + [len(prompt)]
    for index, end in enumerate(bounds):
        clause = prompt[start:end].strip(" -")
        span = (start, end)
        start = end + 1
        if not clause:
            continue
        content = [
            t
            for i, t in enumerate(tokens)
            if span[0] <= t.start < span[1] and i not in used and t.folded not in JOINERS
        ]
        if len(content) < (2 if index == 0 else 1):
            continue
        if find_spam(clause) or find_contact_data(clause):
            continue
        out.append(clause[0].upper() + clause[1:])
    return out
