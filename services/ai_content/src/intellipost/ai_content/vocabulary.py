"""Words the rules know in Spanish, Portuguese and English: brands, colours, conditions."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A word runs until a space or punctuation; dots, apostrophes and dashes may sit inside it
# ("1.5", "Levi's", "t-shirt") but not at its ends.
WORD = re.compile(r"[^\s,;:()\[\]{}!?¡¿\"“”/|*]+")
EDGES = ".'-_"


def fold(text: str) -> str:
    """Lower case without accents: how the rules compare words."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    folded: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in WORD.finditer(text):
        raw = match.group()
        stripped = raw.strip(EDGES)
        if not stripped:
            continue
        start = match.start() + raw.index(stripped)
        tokens.append(Token(stripped, fold(stripped), start, start + len(stripped)))
    return tokens


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


# --- Brands ------------------------------------------------------------------------------

BRANDS = [
    "Acer", "Adidas", "Amazon", "AMD", "Amazfit", "Apple", "Arno", "Asics", "Asus", "Atma", "BGH",
    "Bosch", "Bose", "Brastemp", "Britânia", "Calvin Klein", "Canon", "Carolina Herrera",
    "Casio", "Consul", "Contigo", "Converse", "Crocs", "Dell", "DeWalt", "DJI", "Electrolux",
    "Fila", "Fossil", "Garmin", "Google", "GoPro", "Havaianas", "Hisense", "HP", "Huawei", "HyperX",
    "Intel", "JBL", "Kingston", "Lacoste", "Lego", "Lenovo", "Levi's", "LG", "Liliana",
    "Logitech", "Makita", "Mattel", "Microsoft", "Mizuno", "Mondial", "Motorola", "MSI",
    "Multilaser", "Natura", "New Balance", "Nike", "Nikon", "Nintendo", "Noblex", "Nokia",
    "Nvidia", "Olympikus", "Oster", "Paco Rabanne", "Philco", "Philips", "Positivo", "Puma",
    "Razer", "Redragon", "Reebok", "Samsonite", "Samsung", "SanDisk", "Skechers", "Sony",
    "Stanley", "Stihl", "TCL", "Tissot", "Tommy Hilfiger", "Topper", "Totto", "Tramontina",
    "Under Armour", "Vans", "Whirlpool", "Xiaomi",
]  # fmt: skip

# A product line that names its maker: "iPhone 13" is an Apple even if the seller says not.
BRAND_LINES = {
    "iphone": ("Apple", "iPhone"),
    "ipad": ("Apple", "iPad"),
    "macbook": ("Apple", "MacBook"),
    "airpods": ("Apple", "AirPods"),
    "galaxy": ("Samsung", "Galaxy"),
    "playstation": ("Sony", "PlayStation"),
    "ps5": ("Sony", "PS5"),
    "ps4": ("Sony", "PS4"),
    "xbox": ("Microsoft", "Xbox"),
    "redmi": ("Xiaomi", "Redmi"),
    "pixel": ("Google", "Pixel"),
    "kindle": ("Amazon", "Kindle"),
}

BRAND_BY_FOLDED = {fold(b): b for b in BRANDS}
# Model words sellers type in lower case that still belong to the model name.
MODEL_WORDS = frozenset(
    {"air", "max", "pro", "plus", "ultra", "mini", "lite", "se", "note", "edge", "neo", "slim",
     "classic", "force", "jordan", "boost", "run", "runner", "series", "fe", "prime", "star",
     "all", "old", "skool", "zoom", "pegasus", "revolution", "superstar", "stan", "smith"}
)  # fmt: skip


# --- Colours -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Colour:
    key: str
    es: tuple[str, str, str, str]  # masculine singular, feminine singular, m. plural, f. plural
    pt: tuple[str, str, str, str]
    en: str

    def form(self, language: str, gender: str = "m", number: str = "sg") -> str:
        if language == "en":
            return self.en
        forms = self.es if language == "es" else self.pt
        index = (0 if gender == "m" else 1) + (0 if number == "sg" else 2)
        return forms[index]

    def value_name(self, language: str) -> str:
        """The attribute value: the dictionary form, capitalised."""
        return self.form(language).capitalize() if language != "en" else self.en


# key: Spanish forms, Portuguese forms (m. sg, f. sg, m. pl, f. pl), English.
_COLOUR_TABLE = {
    "black": ("negro negra negros negras", "preto preta pretos pretas", "Black"),
    "white": ("blanco blanca blancos blancas", "branco branca brancos brancas", "White"),
    "red": ("rojo roja rojos rojas", "vermelho vermelha vermelhos vermelhas", "Red"),
    "blue": ("azul azul azules azules", "azul azul azuis azuis", "Blue"),
    "green": ("verde verde verdes verdes", "verde verde verdes verdes", "Green"),
    "grey": ("gris gris grises grises", "cinza cinza cinza cinza", "Grey"),
    "yellow": (
        "amarillo amarilla amarillos amarillas",
        "amarelo amarela amarelos amarelas",
        "Yellow",
    ),
    "pink": ("rosa rosa rosas rosas", "rosa rosa rosa rosa", "Pink"),
    "purple": ("violeta violeta violetas violetas", "roxo roxa roxos roxas", "Purple"),
    "orange": ("naranja naranja naranjas naranjas", "laranja laranja laranja laranja", "Orange"),
    "brown": ("marrón marrón marrones marrones", "marrom marrom marrons marrons", "Brown"),
    "beige": ("beige beige beige beige", "bege bege bege bege", "Beige"),
    "silver": (
        "plateado plateada plateados plateadas",
        "prateado prateada prateados prateadas",
        "Silver",
    ),
    "gold": ("dorado dorada dorados doradas", "dourado dourada dourados douradas", "Gold"),
    "light_blue": (
        "celeste celeste celestes celestes",
        "azul-claro azul-clara azul-claros azul-claras",
        "Light blue",
    ),
}


def _forms(text: str) -> tuple[str, str, str, str]:
    a, b, c, d = text.split()
    return a, b, c, d


COLOURS = [Colour(key, _forms(es), _forms(pt), en) for key, (es, pt, en) in _COLOUR_TABLE.items()]

COLOUR_BY_KEY = {c.key: c for c in COLOURS}
# Extra spellings: word -> (colour key, language or None when several languages share it).
_COLOUR_SYNONYMS = {
    "morado": ("purple", "es"), "morada": ("purple", "es"), "lila": ("purple", "es"),
    "cafe": ("brown", "es"), "cinzento": ("grey", "pt"), "grafite": ("grey", "pt"),
    "grafito": ("grey", "es"), "gray": ("grey", "en"), "dourada": ("gold", "pt"),
}  # fmt: skip


def _colour_words() -> dict[str, tuple[str, str | None]]:
    words: dict[str, tuple[str, str | None]] = {}
    for colour in COLOURS:
        for language, forms in (("es", colour.es), ("pt", colour.pt), ("en", (colour.en,))):
            for form in forms:
                key = fold(form)
                known = words.get(key)
                same = known is None or known[1] == language
                words[key] = (colour.key, language if same else None)
    words.update(_COLOUR_SYNONYMS)
    return words


COLOUR_WORDS = _colour_words()


# --- Condition and gender ----------------------------------------------------------------

CONDITION_WORDS: dict[str, tuple[str, str | None]] = {
    "nuevo": ("new", "es"), "nueva": ("new", "es"), "nuevos": ("new", "es"),
    "nuevas": ("new", "es"), "novo": ("new", "pt"), "nova": ("new", "pt"),
    "novos": ("new", "pt"), "novas": ("new", "pt"), "lacrado": ("new", "pt"),
    "lacrada": ("new", "pt"), "new": ("new", "en"), "sealed": ("new", "en"),
    "usado": ("used", None), "usada": ("used", None), "usados": ("used", None),
    "usadas": ("used", None), "seminuevo": ("used", "es"), "seminueva": ("used", "es"),
    "seminovo": ("used", "pt"), "seminova": ("used", "pt"), "used": ("used", "en"),
    "reacondicionado": ("refurbished", "es"), "reacondicionada": ("refurbished", "es"),
    "recondicionado": ("refurbished", "pt"), "recondicionada": ("refurbished", "pt"),
    "refurbished": ("refurbished", "en"),
}  # fmt: skip
CONDITION_PHRASES = {
    "a estrenar": ("new", "es"), "sin uso": ("new", "es"), "sem uso": ("new", "pt"),
    "brand new": ("new", "en"), "de segunda mano": ("used", "es"),
    "pre-owned": ("used", "en"), "second hand": ("used", "en"),
}  # fmt: skip
CONDITION_NAMES = {
    "es": {"new": "Nuevo", "used": "Usado", "refurbished": "Reacondicionado"},
    "pt": {"new": "Novo", "used": "Usado", "refurbished": "Recondicionado"},
    "en": {"new": "New", "used": "Used", "refurbished": "Refurbished"},
}

GENDER_WORDS: dict[str, tuple[str, str | None]] = {
    "hombre": ("male", "es"), "hombres": ("male", "es"), "caballero": ("male", "es"),
    "masculino": ("male", None), "homem": ("male", "pt"), "men": ("male", "en"),
    "mujer": ("female", "es"), "mujeres": ("female", "es"), "dama": ("female", "es"),
    "femenino": ("female", "es"), "feminino": ("female", "pt"), "mulher": ("female", "pt"),
    "women": ("female", "en"), "unisex": ("unisex", None), "unissex": ("unisex", "pt"),
}  # fmt: skip
GENDER_NAMES = {
    "es": {"male": "Hombre", "female": "Mujer", "unisex": "Unisex"},
    "pt": {"male": "Masculino", "female": "Feminino", "unisex": "Unissex"},
    "en": {"male": "Men", "female": "Women", "unisex": "Unisex"},
}

SIZE_WORDS = {"talle": "es", "talla": "es", "tamanho": "pt", "tam": "pt", "size": "en",
              "numero": None, "nro": None, "n°": None, "nº": None}  # fmt: skip

# Words that join, never name: they end a model name and never start a brand.
JOINERS = frozenset(
    {"de", "del", "la", "el", "los", "las", "y", "e", "con", "com", "para", "por", "en", "em",
     "sin", "sem", "a", "o", "the", "and", "with", "for", "of", "in", "do", "da", "dos", "das",
     "un", "una", "um", "uma", "color", "cor", "colour", "modelo", "model", "marca", "brand"}
)  # fmt: skip


# --- Language ----------------------------------------------------------------------------

# Words frequent in one language and absent (or rare) in the other two, compared in lower
# case with accents: "é" is Portuguese, "e" is too, but "y" is Spanish.
LANGUAGE_WORDS = {
    "es": frozenset(
        {"el", "los", "las", "del", "y", "con", "es", "una", "un", "su", "sus", "al",
         "más", "sin", "muy", "también", "talle", "talla", "nuevo", "nueva", "nuevos", "nuevas",
         "características", "garantía", "envío", "preguntas", "incluye", "tiene", "hasta",
         "producto", "cualquier", "duda", "cuenta", "tu", "usted"}
    ),
    "pt": frozenset(
        {"os", "do", "da", "dos", "das", "e", "com", "é", "um", "uma", "pelo", "pela", "seu",
         "sua", "não", "mais", "sem", "muito", "também", "tamanho", "novo", "nova", "novos",
         "novas", "garantia", "envio", "perguntas", "inclui", "tem", "até", "produto", "são",
         "você", "ao", "na", "qualquer", "dúvida", "cor", "pra"}
    ),
    "en": frozenset(
        {"the", "and", "with", "is", "an", "of", "to", "this", "that", "by", "or", "without",
         "new", "used", "size", "features", "warranty", "shipping", "questions", "includes",
         "has", "product", "your", "you", "for", "it", "condition", "brand", "colour",
         "any", "ask", "buying"}
    ),
}  # fmt: skip
LANGUAGE_LETTERS = {"es": "ñ¿¡", "pt": "ãõç", "en": ""}


def language_scores(text: str) -> dict[str, int]:
    """How many language-marking words and letters of each language the text has."""
    scores = dict.fromkeys(LANGUAGE_WORDS, 0)
    for token in words(text.lower()):
        for language, marking in LANGUAGE_WORDS.items():
            if token in marking:
                scores[language] += 1
        for language, letters in LANGUAGE_LETTERS.items():
            if letters and any(c in letters for c in token):
                scores[language] += 1
    return scores


def detect_language(text: str, *, min_evidence: int = 3) -> str | None:
    """The language with the most evidence, or None when the text says too little."""
    scores = language_scores(text)
    best = max(scores, key=lambda k: scores[k])
    if scores[best] < min_evidence:
        return None
    return best
