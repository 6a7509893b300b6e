"""The embedded provider: offline, deterministic listings built from the prompt's facts."""

from __future__ import annotations

from collections.abc import Sequence

from intellipost.ai_content.categories import Noun
from intellipost.ai_content.extraction import Facts
from intellipost.ai_content.providers.base import Draft, GenerationInput
from intellipost.ai_content.schemas import Attribute
from intellipost.ai_content.vocabulary import GENDER_NAMES, JOINERS, fold

MODEL_NAME = "rules-v1"

LABELS = {
    "es": {
        "BRAND": "Marca", "MODEL": "Modelo", "COLOR": "Color", "SIZE": "Talla",
        "GENDER": "Género", "INTERNAL_MEMORY": "Memoria interna", "RAM": "Memoria RAM",
        "SSD_DATA_STORAGE_CAPACITY": "Almacenamiento", "CAPACITY": "Capacidad",
        "UNIT_VOLUME": "Volumen", "DISPLAY_SIZE": "Tamaño de pantalla",
        "ITEM_CONDITION": "Condición",
    },
    "pt": {
        "BRAND": "Marca", "MODEL": "Modelo", "COLOR": "Cor", "SIZE": "Tamanho",
        "GENDER": "Gênero", "INTERNAL_MEMORY": "Memória interna", "RAM": "Memória RAM",
        "SSD_DATA_STORAGE_CAPACITY": "Armazenamento", "CAPACITY": "Capacidade",
        "UNIT_VOLUME": "Volume", "DISPLAY_SIZE": "Tamanho da tela", "ITEM_CONDITION": "Condição",
    },
    "en": {
        "BRAND": "Brand", "MODEL": "Model", "COLOR": "Colour", "SIZE": "Size",
        "GENDER": "Gender", "INTERNAL_MEMORY": "Internal memory", "RAM": "RAM",
        "SSD_DATA_STORAGE_CAPACITY": "Storage", "CAPACITY": "Capacity", "UNIT_VOLUME": "Volume",
        "DISPLAY_SIZE": "Screen size", "ITEM_CONDITION": "Condition",
    },
}  # fmt: skip

TEXT = {
    "es": {
        "features": "Características principales",
        "details": "Detalles",
        "size": "talla",
        "colour": "en color {colour}",
        "condition": {
            "new": "Producto nuevo.",
            "used": "Producto usado.",
            "refurbished": "Producto reacondicionado.",
        },
        "photo": "Revisa la foto para ver el producto en detalle.",
        "photos": "Revisa las {n} fotos para ver el producto en detalle.",
        "closing": "¿Tienes alguna duda? Escríbenos en la sección de preguntas antes de comprar.",
    },
    "pt": {
        "features": "Características principais",
        "details": "Detalhes",
        "size": "tamanho",
        "colour": "na cor {colour}",
        "condition": {
            "new": "Produto novo.",
            "used": "Produto usado.",
            "refurbished": "Produto recondicionado.",
        },
        "photo": "Veja a foto para conferir o produto em detalhe.",
        "photos": "Veja as {n} fotos para conferir o produto em detalhe.",
        "closing": "Ficou com alguma dúvida? Envie sua pergunta antes de comprar.",
    },
    "en": {
        "features": "Main features",
        "details": "Details",
        "size": "size",
        "colour": "in {colour}",
        "condition": {
            "new": "Brand-new item.",
            "used": "Used item.",
            "refurbished": "Refurbished item.",
        },
        "photo": "See the photo for every detail.",
        "photos": "See the {n} photos for every detail.",
        "closing": "Any question? Ask it in the questions section before buying.",
    },
}
SCREEN_UNITS = {"es": "pulgadas", "pt": "polegadas", "en": "inches"}
# Argentina says "talle" and uses voseo.
SITE_TEXT = {
    ("MLA", "es"): {
        "size": "talle",
        "photo": "Mirá la foto para ver el producto en detalle.",
        "photos": "Mirá las {n} fotos para ver el producto en detalle.",
        "closing": "¿Tenés alguna duda? Escribinos en la sección de preguntas antes de comprar.",
    },
}
SITE_LABELS = {("MLA", "es"): {"SIZE": "Talle"}}
# Title order: what the product is, who made it, which one, then what buyers filter by.
TITLE_ORDER = ("noun", "brand", "model", "capacity", "screen", "ram", "gender", "colour", "size")
# What goes first when the title is too long for the category.
DROP_ORDER = ("gender", "ram", "colour", "size", "screen", "capacity")


def _text(language: str, site: str, key: str) -> str:
    value = SITE_TEXT.get((site, language), {}).get(key) or TEXT[language][key]
    assert isinstance(value, str)
    return value


class LocalProvider:
    name = "local"
    model = MODEL_NAME
    remote = False

    async def generate(
        self, request: GenerationInput, feedback: Sequence[str] = (), timeout_seconds: float = 0
    ) -> Draft:
        return compose(request)


def compose(request: GenerationInput) -> Draft:
    """Same input, same output: no randomness, no clock, no network."""
    facts = request.facts
    words, noun = _noun(facts, request.site, request.language)
    attributes = facts.attributes(request.language)
    found = {a.id for a in attributes}
    for attribute_id, value in request.category.suggested_attributes:
        # MercadoLibre recognised a value the rules missed (an unknown brand, say).
        if attribute_id in request.category.required_attributes and attribute_id not in found:
            attributes.append(Attribute(id=attribute_id, value_name=value))
            found.add(attribute_id)
    return Draft(
        title=_title(facts, words, noun, request),
        description=_description(facts, words, noun, attributes, request),
        attributes=tuple(attributes),
        provider=LocalProvider.name,
        model=MODEL_NAME,
    )


def _noun(facts: Facts, site: str, language: str) -> tuple[list[str], Noun]:
    """The words naming the product, in the listing's language, and their agreement."""
    same_language = facts.language in (None, language)
    keyword = facts.keyword
    if facts.lead and (same_language or keyword is None):
        lead = list(facts.lead)
        if keyword is not None and keyword.written.split()[0] in lead:
            mapped = keyword.category.noun(site, language)
            if fold(mapped.text) == fold(keyword.written):
                # "tenis" is plural in Mexico and singular in Brazil: the site decides.
                return lead, Noun(keyword.written, mapped.gender, mapped.number)
            return lead, keyword.noun
        return lead, _guess_agreement(lead[0])
    if keyword is not None:
        noun = keyword.category.noun(site, language)
        return noun.text.split(), noun
    return [], Noun("")


def _guess_agreement(word: str) -> Noun:
    folded = fold(word)
    if folded.endswith("as"):
        return Noun(word, "f", "pl")
    if folded.endswith(("os", "es")):
        return Noun(word, "m", "pl")
    if folded.endswith("a"):
        return Noun(word, "f", "sg")
    return Noun(word, "m", "sg")


def _title_case(words: Sequence[str]) -> str:
    out = []
    for i, word in enumerate(words):
        if i > 0 and fold(word) in JOINERS:
            out.append(word.lower())
        elif any(c.isupper() for c in word):
            out.append(word)
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def _size_word(language: str, site: str) -> str:
    return _text(language, site, "size")


def _title(facts: Facts, words: list[str], noun: Noun, request: GenerationInput) -> str:
    language = request.language
    parts: dict[str, str] = {}
    if words:
        parts["noun"] = _title_case(words)
    if facts.brand:
        parts["brand"] = facts.brand
    if facts.model:
        parts["model"] = facts.model
    if facts.capacity:
        parts["capacity"] = facts.capacity
    if facts.screen:
        parts["screen"] = facts.screen
    if facts.ram:
        parts["ram"] = f"{facts.ram} RAM"
    if facts.gender:
        parts["gender"] = GENDER_NAMES[language][facts.gender]
    if facts.colour:
        parts["colour"] = facts.colour.form(language, noun.gender, noun.number).capitalize()
    if facts.size:
        parts["size"] = f"{_size_word(language, request.site).capitalize()} {facts.size}"

    def render() -> str:
        return " ".join(parts[k] for k in TITLE_ORDER if k in parts)

    limit = request.title_limit
    for key in DROP_ORDER:
        if len(render()) <= limit:
            break
        parts.pop(key, None)
    if len(render()) > limit and "noun" in parts and len(words) > 1:
        parts["noun"] = _title_case(words[:1])
    while len(render()) > limit and len(parts.get("model", "").split()) > 1:
        parts["model"] = parts["model"].rsplit(" ", 1)[0]
    title = render() or _title_case(facts.prompt.split()[:6])
    if len(title) > limit:
        title = title[: limit + 1].rsplit(" ", 1)[0] if " " in title[:limit] else title[:limit]
    return title


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _description(
    facts: Facts,
    words: list[str],
    noun: Noun,
    attributes: list[Attribute],
    request: GenerationInput,
) -> str:
    language, site = request.language, request.site
    text = TEXT[language]
    labels = {**LABELS[language], **SITE_LABELS.get((site, language), {})}

    name = " ".join(words)
    if language == "en":
        core = " ".join(p for p in (facts.brand, facts.model, name.lower()) if p)
    else:
        core = " ".join(p for p in (name, facts.brand, facts.model) if p)
    if not core:
        core = request.category.name
    intro = core
    if facts.colour:
        # Portuguese "cor" is feminine: "na cor branca"; Spanish "color" is masculine.
        gender = "f" if language == "pt" else "m"
        colour = facts.colour.form(language, gender, "sg")
        intro += " " + str(text["colour"]).format(colour=colour.lower())
    if facts.screen:
        intro += f", {facts.screen.rstrip('"')} {SCREEN_UNITS[language]}"
    if facts.capacity:
        intro += f", {facts.capacity}"
    if facts.size:
        intro += f", {_size_word(language, site)} {facts.size}"
    paragraphs = [_sentence(intro)]
    if facts.condition:
        conditions = text["condition"]
        assert isinstance(conditions, dict)
        paragraphs[0] += " " + conditions[facts.condition]

    if attributes:
        lines = [f"- {labels.get(a.id, a.id.title())}: {a.value_name}" for a in attributes]
        paragraphs.append(f"{text['features']}:\n" + "\n".join(lines))

    if facts.details and facts.language in (None, language):
        lines = [f"- {_sentence(d)}" for d in facts.details]
        paragraphs.append(f"{text['details']}:\n" + "\n".join(lines))

    count = len(request.images)
    if count == 1:
        paragraphs.append(_text(language, site, "photo"))
    elif count > 1:
        paragraphs.append(_text(language, site, "photos").format(n=count))

    paragraphs.append(_text(language, site, "closing"))
    return "\n\n".join(paragraphs)
