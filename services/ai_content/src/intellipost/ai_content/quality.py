"""Quality control of a listing: named checks, a score in [0, 1] and whether it passes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from intellipost.ai_content.schemas import Attribute
from intellipost.ai_content.vocabulary import fold, language_scores

# Words MercadoLibre removes or penalises: promotions and shipping promises belong in the
# listing's settings, counterfeits are forbidden outright.
SPAM_PHRASES = (
    "oferta", "ofertas", "oferton", "promo", "promocion", "promocao", "liquidacion",
    "envio gratis", "frete gratis", "gratis", "descuento", "desconto", "barato", "barata",
    "baratissimo", "imperdible", "mejor precio", "melhor preco", "sin interes", "sem juros",
    "hot sale", "black friday", "cyber monday", "compra ya", "aprovecha", "aproveite",
    "ultimas unidades", "best price", "free shipping", "discount", "cheap",
)  # fmt: skip
BANNED_PHRASES = (
    "replica", "replicas", "imitacion", "imitacao", "falsificado", "falsificada", "clon",
    "clone", "tipo original", "simil", "similar a", "copia", "primera linea", "fake",
)  # fmt: skip
# Superlatives a buyer skips and MercadoLibre's title guide asks to leave out.
TITLE_FILLER = (
    "increible", "incrivel", "espectacular", "hermoso", "hermosa", "lindo", "linda",
    "impecable", "excelente", "maravilhoso", "maravilloso", "vendo", "amazing", "awesome",
    "best",
)  # fmt: skip

MESSAGING_WORDS = (
    "whatsapp", "whats app", "wpp", "wsp", "zap", "zapzap", "telegram", "instagram",
    "facebook", "tiktok", "twitter", "messenger", "wa.me",
)  # fmt: skip


def _phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){alternatives}(?![\w])")


SPAM = _phrase_pattern(SPAM_PHRASES)
BANNED = _phrase_pattern(BANNED_PHRASES)
FILLER = _phrase_pattern(TITLE_FILLER)
MESSAGING = _phrase_pattern(MESSAGING_WORDS)
REPEATED_PUNCTUATION = re.compile(r"[!?¡]{2,}|\${2,}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL = re.compile(
    r"https?://\S+|www\.\S+|(?<![\w@.])[\w-]{2,}\.(?:com|net|org|info|biz|io|shop|store|"
    r"online|site|ar|br|mx|cl|co|uy|pe)(?:\.[a-z]{2})?(?![\w])",
    re.IGNORECASE,
)
HANDLE = re.compile(r"(?<![\w@.])@[A-Za-z0-9_.]{2,30}")
DIGIT_RUN = re.compile(r"\+?\(?\d[\d\s().-]{6,}\d")
YEAR = re.compile(r"^(19|20)\d\d$")


def _looks_like_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 8 <= len(digits) <= 15:
        return False
    groups = [g for g in re.split(r"[\s().-]+", candidate.strip("+( ")) if g]
    if all(YEAR.match(g) for g in groups):
        return False  # "2020-2021"
    if candidate.startswith(("+", "(")):
        return True
    if len(groups) == 1:
        # A bare run: phones are 8-11 digits; 12-13 are barcodes (UPC/EAN).
        return len(digits) <= 11
    separators = set(re.sub(r"[\d\s]", "", candidate))
    if separators <= {"."} and all(len(g) == 3 for g in groups[1:]):
        return False  # a thousands-separated quantity: 1.500.000
    if "-" in separators or "." in separators:
        return True
    # Space-separated groups: "11 5555 5555" yes, "Max 90 2024 42" no.
    return len(digits) >= 10 and sum(len(g) >= 4 for g in groups) >= 2


def find_contact_data(text: str) -> list[str]:
    """Kinds of contact data in the text (never the data itself: it would reach logs)."""
    found = []
    if EMAIL.search(text):
        found.append("email address")
    if URL.search(EMAIL.sub(" ", text)):
        found.append("URL")
    if HANDLE.search(text):
        found.append("social handle")
    if MESSAGING.search(fold(text)):
        found.append("messaging or social network")
    if any(_looks_like_phone(m.group()) for m in DIGIT_RUN.finditer(text)):
        found.append("phone number")
    return found


def find_spam(text: str, *, title: bool = False) -> list[str]:
    folded = fold(text)
    found = [m.group() for m in SPAM.finditer(folded)]
    found += [m.group() for m in BANNED.finditer(folded)]
    if REPEATED_PUNCTUATION.search(text):
        found.append("repeated punctuation")
    if title:
        found += [m.group() for m in FILLER.finditer(folded)]
        if any(unicodedata.category(c) == "So" for c in text):
            found.append("symbols or emoji")
    return sorted(set(found))


def is_mostly_caps(title: str) -> bool:
    letters = [c for c in title if c.isalpha()]
    if len(letters) >= 6 and all(c.isupper() for c in letters):
        return True
    long_words: list[str] = re.findall(r"[^\W\d_]{4,}", title)
    shouted = [w for w in long_words if w.isupper()]
    return len(long_words) >= 2 and len(shouted) * 2 > len(long_words)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


# A failure of these makes the listing unpublishable or against MercadoLibre's rules,
# whatever the rest scores.
CRITICAL_CHECKS = frozenset({"title_length", "no_banned_words", "no_contact_data"})


@dataclass(frozen=True, slots=True)
class Report:
    score: float
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Rules:
    threshold: float
    default_max_title_length: int
    min_description_length: int
    max_description_length: int


def evaluate(
    *,
    title: str,
    description: str,
    attributes: Sequence[Attribute],
    language: str,
    max_title_length: int | None,
    required_attributes: Sequence[str],
    rules: Rules,
) -> Report:
    limit = max_title_length or rules.default_max_title_length
    checks = [
        _title_length(title, limit),
        _not_all_caps(title),
        _no_spam(title, description),
        _no_contact(title, description),
        _description_length(description, rules),
        _required_attributes(attributes, required_attributes),
        _language(f"{title}\n{description}", language),
    ]
    score = round(sum(c.passed for c in checks) / len(checks), 3)
    critical_ok = all(c.passed for c in checks if c.name in CRITICAL_CHECKS)
    return Report(score, critical_ok and score >= rules.threshold, tuple(checks))


def _title_length(title: str, limit: int) -> Check:
    length = len(title.strip())
    if length == 0:
        return Check("title_length", False, "the title is empty")
    if length > limit:
        return Check("title_length", False, f"{length} characters; the category allows {limit}")
    return Check("title_length", True, f"{length} of {limit} characters")


def _not_all_caps(title: str) -> Check:
    if is_mostly_caps(title):
        return Check("title_not_all_caps", False, "the title is written in capitals")
    return Check("title_not_all_caps", True, "normal capitalisation")


def _no_spam(title: str, description: str) -> Check:
    in_title = find_spam(title, title=True)
    in_description = find_spam(description)
    if not in_title and not in_description:
        return Check("no_banned_words", True, "no promotional or forbidden words")
    parts = []
    if in_title:
        parts.append("title: " + ", ".join(in_title))
    if in_description:
        parts.append("description: " + ", ".join(in_description))
    return Check("no_banned_words", False, "; ".join(parts))


def _no_contact(title: str, description: str) -> Check:
    in_title = find_contact_data(title)
    in_description = find_contact_data(description)
    if not in_title and not in_description:
        return Check("no_contact_data", True, "no phones, emails, URLs or handles")
    parts = []
    if in_title:
        parts.append("title has " + ", ".join(in_title))
    if in_description:
        parts.append("description has " + ", ".join(in_description))
    return Check("no_contact_data", False, "; ".join(parts))


def _description_length(description: str, rules: Rules) -> Check:
    length = len(description.strip())
    low, high = rules.min_description_length, rules.max_description_length
    if length < low:
        return Check("description_length", False, f"{length} characters; at least {low}")
    if length > high:
        return Check("description_length", False, f"{length} characters; at most {high}")
    return Check("description_length", True, f"{length} characters (between {low} and {high})")


def _required_attributes(attributes: Sequence[Attribute], required: Sequence[str]) -> Check:
    present = {a.id for a in attributes if a.value_name.strip()}
    wanted = list(dict.fromkeys(["BRAND", "MODEL", *required]))
    missing = [a for a in wanted if a not in present]
    if missing:
        return Check("required_attributes", False, "missing " + ", ".join(missing))
    return Check("required_attributes", True, "present: " + ", ".join(wanted))


def _language(text: str, language: str) -> Check:
    scores = language_scores(text)
    best = max(scores.values())
    if best < 3:
        return Check("language", True, f"too little text to tell; taken as {language}")
    if scores[language] == best:
        return Check("language", True, f"reads as {language}")
    detected = max(scores, key=lambda k: scores[k])
    return Check("language", False, f"reads as {detected}, expected {language}")
