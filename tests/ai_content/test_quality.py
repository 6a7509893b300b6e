"""Quality control: each named check catches its case, passes a clean listing, and scores."""

from __future__ import annotations

from typing import Any

import pytest

from intellipost.ai_content.quality import Report, Rules, evaluate, find_contact_data
from intellipost.ai_content.schemas import Attribute

RULES = Rules(
    threshold=0.7,
    default_max_title_length=60,
    min_description_length=80,
    max_description_length=5000,
)
DESCRIPTION = (
    "Zapatillas Nike Air Max 90 en color blanco, talle 42. Producto nuevo.\n\n"
    "Características principales:\n- Marca: Nike\n- Modelo: Air Max 90\n- Color: Blanco\n\n"
    "¿Tienes alguna duda? Escríbenos en la sección de preguntas antes de comprar."
)
CLEAN: dict[str, Any] = {
    "title": "Zapatillas Nike Air Max 90 Blancas Talle 42",
    "description": DESCRIPTION,
    "attributes": [
        Attribute(id="BRAND", value_name="Nike"),
        Attribute(id="MODEL", value_name="Air Max 90"),
    ],
    "language": "es",
    "max_title_length": None,
    "required_attributes": ("BRAND", "MODEL"),
}
ALL_CHECKS = {
    "title_length",
    "title_not_all_caps",
    "no_banned_words",
    "no_contact_data",
    "description_length",
    "required_attributes",
    "language",
}


def run(rules: Rules = RULES, **changes: Any) -> Report:
    return evaluate(**{**CLEAN, **changes}, rules=rules)


def test_a_clean_listing_passes_every_named_check() -> None:
    report = run()
    assert {c.name for c in report.checks} == ALL_CHECKS
    assert all(c.passed for c in report.checks), report.failed
    assert report.score == 1.0
    assert report.passed


@pytest.mark.parametrize(
    ("check", "changes", "detail"),
    [
        (
            "title_length",
            {"title": "Zapatillas Nike Air Max 90 Blancas Talle 42 Hombre Urbanas Running Cómodas"},
            "the category allows 60",
        ),
        ("title_length", {"max_title_length": 30}, "the category allows 30"),
        ("title_not_all_caps", {"title": "ZAPATILLAS NIKE AIR MAX 90 BLANCAS"}, "capitals"),
        ("title_not_all_caps", {"title": "ZAPATILLAS NIKE Air Max 90 BLANCAS"}, "capitals"),
        ("no_banned_words", {"title": "Zapatillas Nike Air Max 90 Oferta"}, "title: oferta"),
        (
            "no_banned_words",
            {"description": DESCRIPTION + "\nEnvío gratis a todo el país."},
            "description: envio gratis",
        ),
        ("no_banned_words", {"title": "Zapatillas Nike Air Max 90 Réplica"}, "replica"),
        ("no_banned_words", {"title": "Zapatillas Nike Air Max 90 Increíbles"}, "increible"),
        ("no_banned_words", {"title": "Zapatillas Nike Air Max 90!!"}, "repeated punctuation"),
        ("no_banned_words", {"title": "Zapatillas Nike Air Max 90 🔥"}, "emoji"),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nLlamame al 11 5555-5555."},
            "phone number",
        ),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nTel: +54 9 11 5555 5555"},
            "phone number",
        ),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nEscribime a ventas@tienda.com"},
            "email address",
        ),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nMás modelos en www.mitienda.com.ar"},
            "URL",
        ),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nVer https://example.org/zapas"},
            "URL",
        ),
        ("no_contact_data", {"title": "Zapatillas Nike Air Max 90 @zapas.ar2"}, "social handle"),
        (
            "no_contact_data",
            {"description": DESCRIPTION + "\nConsultas por WhatsApp."},
            "messaging or social network",
        ),
        ("description_length", {"description": "Zapatillas Nike nuevas."}, "at least 80"),
        ("description_length", {"description": DESCRIPTION * 30}, "at most 5000"),
        (
            "required_attributes",
            {"attributes": [Attribute(id="BRAND", value_name="Nike")]},
            "missing MODEL",
        ),
        (
            "required_attributes",
            {"required_attributes": ("BRAND", "MODEL", "GENDER")},
            "missing GENDER",
        ),
        ("language", {"language": "pt"}, "reads as es, expected pt"),
    ],
)
def test_each_check_catches_its_case(check: str, changes: dict[str, Any], detail: str) -> None:
    report = run(**changes)
    failed = {c.name: c for c in report.failed}
    assert set(failed) == {check}
    assert detail in failed[check].detail
    assert report.score == round(6 / 7, 3)


@pytest.mark.parametrize(
    "text",
    [
        "Medidas: 120 x 60 x 75 cm",
        "Compatible con modelos 2020-2021",
        "Código EAN 7791234567890",
        "Batería de 1.500.000 mAh",
        "Zapatillas Nike Air Max 90 2024 talle 42",
        "Funciona con 2 pilas AAA",
        "Precio por unidad, 3 unidades disponibles",
        "Galaxy S23 SM-S911B 128 GB",
    ],
)
def test_ordinary_numbers_and_words_are_not_contact_data(text: str) -> None:
    assert find_contact_data(text) == []


def test_contact_data_fails_the_listing_whatever_the_score() -> None:
    report = run(description=DESCRIPTION + "\nWhatsApp 11 5555-5555")
    assert report.score >= RULES.threshold
    assert not report.passed


def test_a_missing_attribute_lowers_the_score_but_passes_the_default_threshold() -> None:
    report = run(attributes=[Attribute(id="BRAND", value_name="Nike")])
    assert report.score == round(6 / 7, 3)
    assert report.passed
    strict = Rules(0.9, 60, 80, 5000)
    assert not run(rules=strict, attributes=[Attribute(id="BRAND", value_name="Nike")]).passed


def test_the_score_counts_every_failed_check() -> None:
    report = run(
        title="ZAPATILLAS NIKE OFERTA",
        description="Nuevas.",
        attributes=[],
    )
    assert {c.name for c in report.failed} == {
        "title_not_all_caps",
        "no_banned_words",
        "description_length",
        "required_attributes",
    }
    assert report.score == round(3 / 7, 3)
    assert not report.passed


def test_portuguese_and_english_descriptions_read_as_their_language() -> None:
    pt = (
        "Tênis Nike Air Max 90 na cor branca, tamanho 42. Produto novo.\n\n"
        "Características principais:\n- Marca: Nike\n- Cor: Branco\n\n"
        "Ficou com alguma dúvida? Envie sua pergunta antes de comprar."
    )
    en = (
        "Nike Air Max 90 sneakers in white, size 42. Brand-new item.\n\nMain features:\n"
        "- Brand: Nike\n\nAny question? Ask it in the questions section before buying."
    )
    assert run(description=pt, language="pt").passed
    assert run(description=en, language="en").passed
    assert "language" in {c.name for c in run(description=pt, language="es").failed}
