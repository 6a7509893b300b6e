"""Category of a listing: the MercadoLibre service's prediction, else a built-in keyword map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from intellipost.ai_content.vocabulary import fold, words
from intellipost.shared.http import get_service_client
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("ai_content.categories")

CATEGORY_ID = re.compile(r"^[A-Z]{3}\d{1,12}$")
ATTRIBUTE_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
BASE_REQUIRED = ("BRAND", "MODEL")
# What a prediction is worth when the service gives no score: domain discovery ranks its
# candidates but does not say how sure it is.
PREDICTED_CONFIDENCE = 0.8
HINTED_CONFIDENCE = 1.0


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    confidence: float
    max_title_length: int | None = None
    required_attributes: tuple[str, ...] = BASE_REQUIRED
    source: str = "builtin"
    # Values MercadoLibre's domain discovery read from the title (BRAND=Nike, ...).
    suggested_attributes: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "confidence": self.confidence,
            "max_title_length": self.max_title_length,
            "required_attributes": list(self.required_attributes),
            "source": self.source,
            "suggested_attributes": [list(pair) for pair in self.suggested_attributes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Category:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            confidence=float(data["confidence"]),
            max_title_length=data.get("max_title_length"),
            required_attributes=tuple(data.get("required_attributes") or BASE_REQUIRED),
            source=str(data.get("source", "builtin")),
            suggested_attributes=tuple(
                (str(k), str(v)) for k, v in data.get("suggested_attributes") or []
            ),
        )


@dataclass(frozen=True, slots=True)
class Noun:
    """How a product is called in a language, with what its adjectives agree."""

    text: str
    gender: str = "m"
    number: str = "sg"


@dataclass(frozen=True, slots=True)
class BuiltinCategory:
    key: str
    # (phrase, language or None, gender, number), phrases compared folded.
    keywords: tuple[tuple[str, str | None, str, str], ...]
    ids: dict[str, tuple[str, str]]
    nouns: dict[str, Noun]
    site_nouns: dict[str, Noun] = field(default_factory=dict)
    leaf_sites: frozenset[str] = frozenset()
    sized: bool = False
    capacity_attribute: str | None = None

    def category(self, site: str) -> Category:
        category_id, name = self.ids[site]
        confidence = 0.6 if site in self.leaf_sites else 0.35
        return Category(category_id, name, confidence, source="builtin")

    def noun(self, site: str, language: str) -> Noun:
        if language == "es" and site in self.site_nouns:
            return self.site_nouns[site]
        return self.nouns[language]


ES_SITES = ("MLA", "MLM", "MLC", "MCO")


def _per_site(
    number: int, es_name: str, pt_name: str, **overrides: tuple[str, str]
) -> dict[str, tuple[str, str]]:
    ids = {site: (f"{site}{number}", es_name) for site in ES_SITES}
    ids["MLB"] = (f"MLB{number}", pt_name)
    ids.update(overrides)
    return ids


CLOTHING_PARENT = _per_site(
    1430,
    "Ropa, Bolsas y Calzado",
    "Calçados, Roupas e Bolsas",
    MLA=("MLA1430", "Ropa y Accesorios"),
    MLC=("MLC1430", "Vestuario y Calzado"),
    MCO=("MCO1430", "Ropa y Accesorios"),
)

BUILTIN_CATEGORIES = (
    BuiltinCategory(
        "sneakers",
        (
            ("zapatillas", "es", "f", "pl"),
            ("zapatilla", "es", "f", "sg"),
            ("tenis", None, "m", "pl"),
            ("tênis", "pt", "m", "sg"),
            ("sneakers", "en", "m", "pl"),
            ("trainers", "en", "m", "pl"),
        ),
        {**CLOTHING_PARENT, "MLA": ("MLA109027", "Zapatillas"), "MLB": ("MLB23332", "Tênis")},
        {
            "es": Noun("Zapatillas", "f", "pl"),
            "pt": Noun("Tênis", "m", "sg"),
            "en": Noun("Sneakers"),
        },
        {"MLM": Noun("Tenis", "m", "pl"), "MCO": Noun("Tenis", "m", "pl")},
        leaf_sites=frozenset({"MLA", "MLB"}),
        sized=True,
    ),
    BuiltinCategory(
        "phones",
        (
            ("celular", None, "m", "sg"),
            ("celulares", None, "m", "pl"),
            ("smartphone", None, "m", "sg"),
            ("telefono celular", "es", "m", "sg"),
            ("iphone", None, "m", "sg"),
            ("galaxy", None, "m", "sg"),
            ("redmi", None, "m", "sg"),
            ("phone", "en", "m", "sg"),
        ),
        _per_site(1055, "Celulares y Smartphones", "Celulares e Smartphones"),
        {"es": Noun("Celular"), "pt": Noun("Celular"), "en": Noun("Smartphone")},
        leaf_sites=frozenset({"MLA", "MLB", "MLM", "MLC", "MCO"}),
        capacity_attribute="INTERNAL_MEMORY",
    ),
    BuiltinCategory(
        "notebooks",
        (
            ("notebook", None, "f", "sg"),
            ("notebooks", None, "f", "pl"),
            ("laptop", None, "f", "sg"),
            ("portatil", "es", "m", "sg"),
            ("macbook", None, "f", "sg"),
        ),
        _per_site(
            1652,
            "Notebooks",
            "Notebooks",
            MLM=("MLM1652", "Laptops"),
            MCO=("MCO1652", "Portátiles"),
        ),
        {"es": Noun("Notebook", "f"), "pt": Noun("Notebook", "m"), "en": Noun("Laptop")},
        {"MLM": Noun("Laptop", "f"), "MCO": Noun("Portátil", "m")},
        leaf_sites=frozenset({"MLA", "MLB", "MLM", "MLC", "MCO"}),
        capacity_attribute="SSD_DATA_STORAGE_CAPACITY",
    ),
    BuiltinCategory(
        "tablets",
        (("tablet", None, "f", "sg"), ("tablets", None, "f", "pl"), ("ipad", None, "m", "sg")),
        _per_site(1648, "Computación", "Informática", MLA=("MLA400950", "Tablets y Accesorios")),
        {"es": Noun("Tablet", "f"), "pt": Noun("Tablet", "m"), "en": Noun("Tablet")},
        capacity_attribute="INTERNAL_MEMORY",
    ),
    BuiltinCategory(
        "tvs",
        (
            ("televisor", "es", "m", "sg"),
            ("smart tv", None, "m", "sg"),
            ("televisao", "pt", "f", "sg"),
            ("tv", None, "m", "sg"),
            ("television", "en", "m", "sg"),
        ),
        _per_site(1002, "Televisores", "Televisões"),
        {"es": Noun("Smart TV"), "pt": Noun("Smart TV", "f"), "en": Noun("Smart TV")},
        leaf_sites=frozenset({"MLA", "MLB", "MLM", "MLC", "MCO"}),
    ),
    BuiltinCategory(
        "headphones",
        (
            ("auriculares", "es", "m", "pl"),
            ("auricular", "es", "m", "sg"),
            ("audifonos", "es", "m", "pl"),
            ("fone de ouvido", "pt", "m", "sg"),
            ("fones de ouvido", "pt", "m", "pl"),
            ("headphones", "en", "m", "pl"),
            ("earbuds", "en", "m", "pl"),
            ("airpods", None, "m", "pl"),
        ),
        _per_site(
            1000,
            "Electrónica, Audio y Video",
            "Eletrônicos, Áudio e Vídeo",
            MLA=("MLA3697", "Auriculares"),
        ),
        {
            "es": Noun("Auriculares", "m", "pl"),
            "pt": Noun("Fone de Ouvido"),
            "en": Noun("Headphones"),
        },
        {"MLM": Noun("Audífonos", "m", "pl"), "MCO": Noun("Audífonos", "m", "pl")},
        leaf_sites=frozenset({"MLA"}),
    ),
    BuiltinCategory(
        "tshirts",
        (
            ("remera", "es", "f", "sg"),
            ("remeras", "es", "f", "pl"),
            ("camiseta", None, "f", "sg"),
            ("camisetas", None, "f", "pl"),
            ("playera", "es", "f", "sg"),
            ("polera", "es", "f", "sg"),
            ("t-shirt", "en", "m", "sg"),
            ("tshirt", "en", "m", "sg"),
        ),
        {**CLOTHING_PARENT, "MLA": ("MLA109042", "Remeras, Musculosas y Chombas")},
        {"es": Noun("Remera", "f"), "pt": Noun("Camiseta", "f"), "en": Noun("T-shirt")},
        {"MLM": Noun("Playera", "f"), "MLC": Noun("Polera", "f"), "MCO": Noun("Camiseta", "f")},
        leaf_sites=frozenset({"MLA"}),
        sized=True,
    ),
    BuiltinCategory(
        "backpacks",
        (
            ("mochila", None, "f", "sg"),
            ("mochilas", None, "f", "pl"),
            ("backpack", "en", "m", "sg"),
        ),
        {**CLOTHING_PARENT, "MLA": ("MLA110761", "Equipaje, Bolsos y Carteras")},
        {"es": Noun("Mochila", "f"), "pt": Noun("Mochila", "f"), "en": Noun("Backpack")},
        capacity_attribute="CAPACITY",
    ),
    BuiltinCategory(
        "smartwatches",
        (
            ("smartwatch", None, "m", "sg"),
            ("reloj inteligente", "es", "m", "sg"),
            ("smartband", None, "m", "sg"),
        ),
        _per_site(
            1051,
            "Celulares y Teléfonos",
            "Celulares e Telefones",
            MLA=("MLA417704", "Smartwatches y Accesorios"),
        ),
        {"es": Noun("Smartwatch"), "pt": Noun("Smartwatch"), "en": Noun("Smartwatch")},
        leaf_sites=frozenset({"MLA"}),
    ),
    BuiltinCategory(
        "watches",
        (
            ("reloj", "es", "m", "sg"),
            ("relojes", "es", "m", "pl"),
            ("relogio", "pt", "m", "sg"),
            ("watch", "en", "m", "sg"),
        ),
        _per_site(3937, "Joyas y Relojes", "Joias e Relógios", MLA=("MLA431677", "Relojes")),
        {"es": Noun("Reloj"), "pt": Noun("Relógio"), "en": Noun("Watch")},
        leaf_sites=frozenset({"MLA"}),
    ),
    BuiltinCategory(
        "perfumes",
        (
            ("perfume", None, "m", "sg"),
            ("perfumes", None, "m", "pl"),
            ("fragancia", "es", "f", "sg"),
            ("eau de parfum", None, "m", "sg"),
            ("eau de toilette", None, "m", "sg"),
        ),
        _per_site(
            1246,
            "Belleza y Cuidado Personal",
            "Beleza e Cuidado Pessoal",
            MLA=("MLA1271", "Perfumes"),
            MLB=("MLB6284", "Perfumes"),
        ),
        {"es": Noun("Perfume"), "pt": Noun("Perfume"), "en": Noun("Perfume")},
        leaf_sites=frozenset({"MLA", "MLB"}),
        capacity_attribute="UNIT_VOLUME",
    ),
    BuiltinCategory(
        "consoles",
        (
            ("consola", "es", "f", "sg"),
            ("console", None, "m", "sg"),
            ("playstation", None, "m", "sg"),
            ("ps5", None, "m", "sg"),
            ("ps4", None, "m", "sg"),
            ("xbox", None, "m", "sg"),
            ("nintendo switch", None, "m", "sg"),
        ),
        _per_site(
            1144,
            "Consolas y Videojuegos",
            "Games",
            MLA=("MLA438566", "Consolas"),
            MLB=("MLB11172", "Consoles"),
        ),
        {"es": Noun("Consola", "f"), "pt": Noun("Console"), "en": Noun("Console")},
        leaf_sites=frozenset({"MLA", "MLB"}),
        capacity_attribute="INTERNAL_MEMORY",
    ),
    BuiltinCategory(
        "small_appliances",
        (
            ("freidora", "es", "f", "sg"),
            ("air fryer", None, "f", "sg"),
            ("fritadeira", "pt", "f", "sg"),
            ("licuadora", "es", "f", "sg"),
            ("liquidificador", "pt", "m", "sg"),
            ("cafetera", "es", "f", "sg"),
            ("cafeteira", "pt", "f", "sg"),
            ("batidora", "es", "f", "sg"),
            ("microondas", None, "m", "sg"),
            ("pava electrica", "es", "f", "sg"),
        ),
        _per_site(
            5726,
            "Electrodomésticos",
            "Eletrodomésticos",
            MLA=("MLA438284", "Pequeños Electrodomésticos"),
        ),
        {"es": Noun("Electrodoméstico"), "pt": Noun("Eletrodoméstico"), "en": Noun("Appliance")},
        leaf_sites=frozenset({"MLA"}),
        capacity_attribute="CAPACITY",
    ),
    BuiltinCategory(
        "bicycles",
        (
            ("bicicleta", None, "f", "sg"),
            ("bicicletas", None, "f", "pl"),
            ("bike", None, "f", "sg"),
            ("bicycle", "en", "m", "sg"),
        ),
        _per_site(1276, "Deportes y Fitness", "Esportes e Fitness", MLA=("MLA1292", "Ciclismo")),
        {"es": Noun("Bicicleta", "f"), "pt": Noun("Bicicleta", "f"), "en": Noun("Bicycle")},
    ),
    BuiltinCategory(
        "furniture",
        (
            ("silla", "es", "f", "sg"),
            ("sillas", "es", "f", "pl"),
            ("cadeira", "pt", "f", "sg"),
            ("mesa", None, "f", "sg"),
            ("sillon", "es", "m", "sg"),
            ("sofa", None, "m", "sg"),
            ("escritorio", "es", "m", "sg"),
            ("chair", "en", "m", "sg"),
            ("table", "en", "m", "sg"),
        ),
        _per_site(
            1574,
            "Hogar, Muebles y Jardín",
            "Casa, Móveis e Decoração",
            MLA=("MLA436380", "Muebles para el Hogar"),
        ),
        {"es": Noun("Mueble"), "pt": Noun("Móvel"), "en": Noun("Furniture")},
    ),
)

OTHER_CATEGORY = _per_site(1953, "Otras categorías", "Mais Categorias")


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    category: BuiltinCategory
    position: int
    written: str  # the words as the seller wrote them
    language: str | None
    noun: Noun


def match_builtin(text: str) -> KeywordMatch | None:
    """The built-in category named earliest in the text (sellers lead with the product)."""
    original = words(text)
    tokens = [fold(t) for t in original]
    best: KeywordMatch | None = None
    for category in BUILTIN_CATEGORIES:
        for phrase, language, gender, number in category.keywords:
            parts = fold(phrase).split()
            for i in range(len(tokens) - len(parts) + 1):
                if tokens[i : i + len(parts)] != parts:
                    continue
                written = " ".join(original[i : i + len(parts)])
                candidate = KeywordMatch(
                    category, i, written, language, Noun(written, gender, number)
                )
                if (
                    best is None
                    or i < best.position
                    or (i == best.position and len(parts) > len(best.written.split()))
                ):
                    best = candidate
                break
    return best


def builtin_category(text: str, site: str) -> Category:
    match = match_builtin(text)
    if match is None:
        category_id, name = OTHER_CATEGORY[site]
        return Category(category_id, name, 0.1, source="builtin")
    return match.category.category(site)


def builtin_by_id(category_id: str) -> Category | None:
    site = category_id[:3]
    for entry in BUILTIN_CATEGORIES:
        if site in entry.ids and entry.ids[site][0] == category_id:
            return entry.category(site)
    if site in OTHER_CATEGORY and OTHER_CATEGORY[site][0] == category_id:
        return Category(category_id, OTHER_CATEGORY[site][1], 0.1, source="builtin")
    return None


class CategoryResolver:
    """Asks the MercadoLibre service (with the caller's token); falls back to the map."""

    def __init__(self, mercadolibre_url: str, *, timeout_seconds: float) -> None:
        self.url = mercadolibre_url.rstrip("/") + "/api/v1/mercadolibre/categories/predict"
        self.timeout_seconds = timeout_seconds

    async def resolve(self, prompt: str, site: str, hint: str | None = None) -> Category:
        hinted_id = hint if hint and CATEGORY_ID.match(hint) else None
        query = prompt if hint is None or hinted_id else f"{hint} {prompt}"
        candidates = await self.predict(query, site)
        if hinted_id:
            for candidate in candidates:
                if candidate.id == hinted_id:
                    return _with_confidence(candidate, HINTED_CONFIDENCE, "hint")
            known = builtin_by_id(hinted_id)
            name = known.name if known else hinted_id
            return Category(hinted_id, name, HINTED_CONFIDENCE, source="hint")
        if candidates:
            return candidates[0]
        return builtin_category(query, site)

    async def predict(self, title: str, site: str) -> list[Category]:
        """The service's candidates, best first; empty when it cannot answer in time."""
        try:
            response = await get_service_client().post(
                self.url,
                json={"title": title[:255], "site": site},
                timeout=httpx.Timeout(self.timeout_seconds),
            )
        except (httpx.HTTPError, OSError) as exc:
            log.warning("category prediction unavailable", error=type(exc).__name__, site=site)
            return []
        if response.status_code != 200:
            log.warning("category prediction refused", status=response.status_code, site=site)
            return []
        try:
            return parse_candidates(response.json(), site)
        except ValueError:
            log.warning("category prediction unreadable", site=site)
            return []


def parse_candidates(body: Any, site: str) -> list[Category]:
    """Candidates from the service's answer, skipping any entry that is not well formed."""
    if isinstance(body, dict):
        body = body.get("candidates", body.get("items", []))
    if not isinstance(body, list):
        return []
    out: list[Category] = []
    for rank, item in enumerate(body):
        if not isinstance(item, dict):
            continue
        category_id = item.get("category_id") or item.get("id")
        name = item.get("category_name") or item.get("name")
        if not isinstance(category_id, str) or not CATEGORY_ID.match(category_id):
            continue
        if not category_id.startswith(site) or not isinstance(name, str) or not name.strip():
            continue
        required = list(BASE_REQUIRED)
        for attribute in item.get("required_attributes") or []:
            attribute_id = attribute.get("id") if isinstance(attribute, dict) else attribute
            if (
                isinstance(attribute_id, str)
                and ATTRIBUTE_ID.match(attribute_id)
                and attribute_id not in required
            ):
                required.append(attribute_id)
        max_title = _title_limit(item.get("max_title_length"))
        score = next((item[k] for k in ("confidence", "probability", "score") if k in item), None)
        if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 1:
            confidence = float(score)
        else:
            confidence = max(0.1, PREDICTED_CONFIDENCE - 0.2 * rank)
        out.append(
            Category(
                category_id,
                name.strip(),
                round(confidence, 3),
                max_title,
                tuple(required),
                "mercadolibre",
                _suggested(item.get("suggested_attributes") or item.get("attributes")),
            )
        )
    return out


def _suggested(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    pairs = []
    for item in value:
        if not isinstance(item, dict):
            continue
        attribute_id, name = item.get("id"), item.get("value_name")
        valid_id = isinstance(attribute_id, str) and ATTRIBUTE_ID.match(attribute_id)
        if valid_id and isinstance(name, str) and 0 < len(name.strip()) <= 255:
            pairs.append((str(attribute_id), name.strip()))
    return tuple(pairs)


def _title_limit(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 10 <= value <= 255 else None


def _with_confidence(category: Category, confidence: float, source: str) -> Category:
    return Category(
        category.id,
        category.name,
        confidence,
        category.max_title_length,
        category.required_attributes,
        source,
        category.suggested_attributes,
    )
