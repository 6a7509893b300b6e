"""The sandbox's built-in category tree, its attributes, and domain discovery over it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Site -> (currency, language). Brazil's site is MLB and speaks Portuguese.
SITES: dict[str, tuple[str, str]] = {
    "MLA": ("ARS", "es"),
    "MLB": ("BRL", "pt"),
    "MLM": ("MXN", "es"),
    "MLC": ("CLP", "es"),
    "MCO": ("COP", "es"),
}
LISTING_TYPES = ("gold_pro", "gold_special", "gold_premium", "gold", "silver", "bronze", "free")
CONDITIONS = ("new", "used", "not_specified")
BUYING_MODES = ("buy_it_now", "auction")


@dataclass(frozen=True)
class Attribute:
    id: str
    name: tuple[str, str]  # (es, pt)
    value_type: str = "string"
    required: bool = False
    values: tuple[tuple[str, str], ...] = ()  # (value_id, value_name)


@dataclass(frozen=True)
class Leaf:
    number: str
    name: tuple[str, str]
    parent: str
    domain: str
    domain_name: tuple[str, str]
    keywords: frozenset[str]
    attributes: tuple[Attribute, ...]
    max_title_length: int = 60
    max_pictures_per_item: int = 12
    brands: tuple[tuple[str, str], ...] = field(default=())


def _brand(*values: tuple[str, str]) -> Attribute:
    return Attribute("BRAND", ("Marca", "Marca"), "string", True, values)


_MODEL = Attribute("MODEL", ("Modelo", "Modelo"), "string", True)
_COLOR = Attribute("COLOR", ("Color", "Cor"), "string")
_GTIN = Attribute("GTIN", ("Código universal de producto", "Código universal de produto"))

_PHONE_BRANDS = (("206", "Samsung"), ("9344", "Apple"), ("2503", "Motorola"), ("7795", "Xiaomi"))
_NOTEBOOK_BRANDS = (("2508", "Lenovo"), ("1249", "HP"), ("1267", "Dell"), ("3281", "Asus"))
_SHOE_BRANDS = (("14810", "Nike"), ("14671", "Adidas"), ("21025", "Puma"), ("57384", "Topper"))
_BIKE_BRANDS = (("63522", "Trek"), ("29171", "Specialized"), ("86354", "Venzo"))
_CAMERA_BRANDS = (("2457", "Canon"), ("2618", "Nikon"), ("2391", "Sony"), ("6547", "Fujifilm"))

PARENTS: dict[str, tuple[str, str]] = {
    "1051": ("Celulares y Teléfonos", "Celulares e Telefones"),
    "1648": ("Computación", "Informática"),
    "1430": ("Ropa y Accesorios", "Calçados, Roupas e Bolsas"),
    "1276": ("Deportes y Fitness", "Esportes e Fitness"),
    "1574": ("Hogar, Muebles y Jardín", "Casa, Móveis e Decoração"),
    "1039": ("Cámaras y Accesorios", "Câmeras e Acessórios"),
}

LEAVES: tuple[Leaf, ...] = (
    Leaf(
        "1055",
        ("Celulares y Smartphones", "Celulares e Smartphones"),
        "1051",
        "CELLPHONES",
        ("Celulares y smartphones", "Celulares e smartphones"),
        frozenset({"celular", "celulares", "smartphone", "telefono", "iphone", "galaxy", "phone"}),
        (
            _brand(*_PHONE_BRANDS),
            _MODEL,
            _COLOR,
            Attribute("INTERNAL_MEMORY", ("Memoria interna", "Memória interna"), "number_unit"),
            _GTIN,
        ),
        brands=_PHONE_BRANDS,
    ),
    Leaf(
        "1652",
        ("Notebooks", "Notebooks"),
        "1648",
        "NOTEBOOKS",
        ("Notebooks", "Notebooks"),
        frozenset({"notebook", "notebooks", "laptop", "macbook", "portatil", "ultrabook"}),
        (
            _brand(*_NOTEBOOK_BRANDS),
            _MODEL,
            Attribute("LINE", ("Línea", "Linha"), "string", True),
            Attribute("PROCESSOR_BRAND", ("Marca del procesador", "Marca do processador")),
            _GTIN,
        ),
        brands=_NOTEBOOK_BRANDS,
    ),
    Leaf(
        "109027",
        ("Zapatillas", "Tênis"),
        "1430",
        "SNEAKERS",
        ("Zapatillas", "Tênis"),
        frozenset({"zapatilla", "zapatillas", "sneaker", "sneakers", "tenis", "running"}),
        (
            _brand(*_SHOE_BRANDS),
            _MODEL,
            Attribute(
                "GENDER",
                ("Género", "Gênero"),
                "list",
                True,
                (("339666", "Hombre"), ("339665", "Mujer"), ("110461", "Sin género")),
            ),
            Attribute("SIZE", ("Talle", "Tamanho"), "string"),
            _COLOR,
        ),
        brands=_SHOE_BRANDS,
    ),
    Leaf(
        "1292",
        ("Bicicletas", "Bicicletas"),
        "1276",
        "BICYCLES",
        ("Bicicletas", "Bicicletas"),
        frozenset({"bicicleta", "bicicletas", "bici", "bike", "mtb", "rodado"}),
        (
            _brand(*_BIKE_BRANDS),
            _MODEL,
            Attribute("WHEEL_SIZE", ("Rodado", "Aro"), "number", True),
            _COLOR,
        ),
        brands=_BIKE_BRANDS,
    ),
    Leaf(
        "436380",
        ("Sillas", "Cadeiras"),
        "1574",
        "CHAIRS",
        ("Sillas", "Cadeiras"),
        frozenset({"silla", "sillas", "chair", "cadeira", "banqueta", "butaca"}),
        (
            Attribute("BRAND", ("Marca", "Marca"), "string", True),
            _MODEL,
            Attribute("MATERIAL", ("Material", "Material"), "string"),
            _COLOR,
        ),
        max_title_length=120,
        max_pictures_per_item=10,
    ),
    Leaf(
        "1042",
        ("Cámaras Digitales", "Câmeras Digitais"),
        "1039",
        "DIGITAL_CAMERAS",
        ("Cámaras digitales", "Câmeras digitais"),
        frozenset({"camara", "camera", "reflex", "mirrorless", "dslr", "fotografica"}),
        (_brand(*_CAMERA_BRANDS), _MODEL, _GTIN),
        brands=_CAMERA_BRANDS,
    ),
)
_BY_NUMBER = {leaf.number: leaf for leaf in LEAVES}
_CATEGORY_ID = re.compile(r"^([A-Z]{3})(\d+)$")


def _lang(site: str) -> int:
    return 1 if SITES[site][1] == "pt" else 0


def words(text: str) -> set[str]:
    """Lower-case words without accents: "Cámara" and "camara" are the same query."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return set(re.findall(r"[a-z0-9]+", plain))


def split_category_id(category_id: str) -> tuple[str, str] | None:
    match = _CATEGORY_ID.match(category_id)
    if not match or match.group(1) not in SITES:
        return None
    return match.group(1), match.group(2)


def leaf(category_id: str) -> tuple[str, Leaf] | None:
    """The site and listable leaf a category id names, if it is one."""
    parts = split_category_id(category_id)
    if parts is None or parts[1] not in _BY_NUMBER:
        return None
    return parts[0], _BY_NUMBER[parts[1]]


def category(category_id: str) -> dict[str, Any] | None:
    """`GET /categories/{id}`."""
    parts = split_category_id(category_id)
    if parts is None:
        return None
    site, number = parts
    lang = _lang(site)
    currency = SITES[site][0]
    if number in PARENTS:
        children = [leaf for leaf in LEAVES if leaf.parent == number]
        return {
            "id": category_id,
            "name": PARENTS[number][lang],
            "path_from_root": [{"id": category_id, "name": PARENTS[number][lang]}],
            "children_categories": [
                {"id": f"{site}{c.number}", "name": c.name[lang], "total_items_in_this_category": 0}
                for c in children
            ],
            "attribute_types": "attributes",
            "settings": _settings(currency, listing_allowed=False, title=60, pictures=12),
        }
    found = _BY_NUMBER.get(number)
    if found is None:
        return None
    parent = f"{site}{found.parent}"
    return {
        "id": category_id,
        "name": found.name[lang],
        "path_from_root": [
            {"id": parent, "name": PARENTS[found.parent][lang]},
            {"id": category_id, "name": found.name[lang]},
        ],
        "children_categories": [],
        "attribute_types": "attributes",
        "settings": _settings(
            currency,
            listing_allowed=True,
            title=found.max_title_length,
            pictures=found.max_pictures_per_item,
        ),
    }


def _settings(currency: str, *, listing_allowed: bool, title: int, pictures: int) -> dict[str, Any]:
    return {
        "adult_content": False,
        "buying_allowed": listing_allowed,
        "buying_modes": list(BUYING_MODES),
        "currencies": [currency],
        "item_conditions": list(CONDITIONS),
        "listing_allowed": listing_allowed,
        "max_pictures_per_item": pictures,
        "max_title_length": title,
        "max_description_length": 50000,
        "minimum_price": 1,
        "status": "enabled",
    }


def attributes(category_id: str) -> list[dict[str, Any]] | None:
    """`GET /categories/{id}/attributes` (only leaves have attributes)."""
    found = leaf(category_id)
    if found is None:
        return None if category(category_id) is None else []
    site, entry = found
    lang = _lang(site)
    out = []
    for attr in entry.attributes:
        tags: dict[str, bool] = {"required": True} if attr.required else {}
        item: dict[str, Any] = {
            "id": attr.id,
            "name": attr.name[lang],
            "tags": tags,
            "hierarchy": "PARENT_PK" if attr.id in {"BRAND", "MODEL"} else "ITEM",
            "relevance": 1 if attr.required else 2,
            "value_type": attr.value_type,
            "value_max_length": 255,
        }
        if attr.values:
            item["values"] = [{"id": vid, "name": name} for vid, name in attr.values]
        out.append(item)
    return out


def discover(site: str, query: str, limit: int) -> list[dict[str, Any]]:
    """`GET /sites/{site}/domain_discovery/search`: the leaves whose words the query uses."""
    lang = _lang(site)
    asked = words(query)
    scored: list[tuple[int, int, Leaf, tuple[str, str] | None]] = []
    for order, entry in enumerate(LEAVES):
        brand = next((b for b in entry.brands if b[1].lower() in asked), None)
        score = 2 * len(asked & entry.keywords) + (1 if brand else 0)
        if score:
            scored.append((-score, order, entry, brand))
    scored.sort(key=lambda s: (s[0], s[1]))
    results = []
    for _, _, entry, brand in scored[:limit]:
        results.append(
            {
                "domain_id": f"{site}-{entry.domain}",
                "domain_name": entry.domain_name[lang],
                "category_id": f"{site}{entry.number}",
                "category_name": entry.name[lang],
                "attributes": (
                    [{"id": "BRAND", "name": "Marca", "value_id": brand[0], "value_name": brand[1]}]
                    if brand
                    else []
                ),
            }
        )
    return results
