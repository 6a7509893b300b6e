"""Settings: a provider's key is a production secret only while that provider is selected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from intellipost.ai_content.config import AiContentConfig
from intellipost.shared.config import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("INTELLIPOST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INTELLIPOST_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("INTELLIPOST_ENVIRONMENT", "production")


def test_production_runs_the_local_provider_without_any_key() -> None:
    assert AiContentConfig().primary_provider == "local"


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"primary_provider": "openai"}, "INTELLIPOST_AI_CONTENT_OPENAI_API_KEY"),
        ({"fallback_provider": "gemini"}, "INTELLIPOST_AI_CONTENT_GEMINI_API_KEY"),
        (
            {"primary_provider": "openai", "openai_api_key": "  "},
            "INTELLIPOST_AI_CONTENT_OPENAI_API_KEY",
        ),
    ],
)
def test_production_refuses_a_selected_provider_without_its_key(
    settings: dict[str, str], variable: str
) -> None:
    with pytest.raises((ConfigError, ValidationError), match=variable):
        AiContentConfig(**settings)  # type: ignore[arg-type]


def test_production_accepts_the_selected_provider_with_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTELLIPOST_AI_CONTENT_PRIMARY_PROVIDER", "gemini")
    monkeypatch.setenv("INTELLIPOST_AI_CONTENT_GEMINI_API_KEY", "AIzaSy-real-looking-key-123")
    config = AiContentConfig()
    assert config.gemini_api_key is not None
    assert config.openai_api_key is None
