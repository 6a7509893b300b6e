"""Configuration: precedence, per-module prefixes, production refusal, `.env.example`."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from intellipost.ai_content.config import AiContentConfig
from intellipost.gateway.config import GatewayConfig
from intellipost.mercadolibre.config import MercadoLibreConfig
from intellipost.product.config import ProductConfig
from intellipost.sandbox.config import SandboxConfig
from intellipost.shared.config import BaseModuleConfig, ConfigError
from intellipost.user.config import UserConfig
from tests.support import REPO, base_env

CONFIG_CLASSES: list[type[BaseModuleConfig]] = [
    GatewayConfig,
    UserConfig,
    ProductConfig,
    MercadoLibreConfig,
    AiContentConfig,
    SandboxConfig,
]
# Variables in .env.example that are not settings of a component class.
NON_CONFIG_VARIABLES = {"INTELLIPOST_ENV_FILE", "INTELLIPOST_TEST_REQUIRE_SERVICES"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No INTELLIPOST_* from the outside; `.env` is a file of this test's own."""
    import os

    for key in list(os.environ):
        if key.startswith("INTELLIPOST_"):
            monkeypatch.delenv(key)
    env_file = tmp_path / ".env"
    monkeypatch.setenv("INTELLIPOST_ENV_FILE", str(env_file))
    return env_file


def test_defaults_are_the_seed_values(clean_env: Path) -> None:
    user = UserConfig()
    assert (user.jwt_expire_minutes, user.session_expire_hours) == (30, 24)
    assert (user.max_login_attempts, user.lockout_duration_minutes) == (5, 15)
    assert user.password_min_length == 8
    assert user.remember_me_expire_days == 30
    product = ProductConfig()
    assert product.max_image_size_mb == 10
    assert product.image_quality == 85
    assert product.thumbnail_sizes == [150, 300, 600]
    assert product.ai_confidence_threshold == 0.8
    ml = MercadoLibreConfig()
    assert (ml.requests_per_minute, ml.max_retries, ml.backoff_multiplier) == (200, 3, 2.0)
    ai = AiContentConfig()
    assert (ai.quality_score_threshold, ai.max_title_length, ai.default_language) == (
        0.7,
        60,
        "es",
    )


def test_module_prefix_selects_the_module(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTELLIPOST_USER_JWT_EXPIRE_MINUTES", "45")
    monkeypatch.setenv("INTELLIPOST_PRODUCT_THUMBNAIL_SIZES", "100,200")
    assert UserConfig().jwt_expire_minutes == 45
    assert ProductConfig().thumbnail_sizes == [100, 200]
    # Another module's prefix is not read by this one.
    monkeypatch.setenv("INTELLIPOST_PRODUCT_PORT", "9999")
    assert UserConfig().port == 8001


def test_environment_beats_dotenv_beats_default(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.write_text("INTELLIPOST_USER_JWT_EXPIRE_MINUTES=40\nINTELLIPOST_USER_PORT=8101\n")
    assert UserConfig().jwt_expire_minutes == 40
    monkeypatch.setenv("INTELLIPOST_USER_JWT_EXPIRE_MINUTES", "50")
    config = UserConfig()
    assert config.jwt_expire_minutes == 50
    assert config.port == 8101
    assert config.session_expire_hours == 24


def test_global_variables_apply_to_every_module_and_module_ones_win(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.write_text("INTELLIPOST_LOG_LEVEL=WARNING\nINTELLIPOST_REDIS_URL=redis://dotenv\n")
    assert UserConfig().log_level == "WARNING"
    assert AiContentConfig().redis_url == "redis://dotenv"
    monkeypatch.setenv("INTELLIPOST_REDIS_URL", "redis://env")
    assert AiContentConfig().redis_url == "redis://env"
    monkeypatch.setenv("INTELLIPOST_AI_CONTENT_REDIS_URL", "redis://module")
    assert AiContentConfig().redis_url == "redis://module"
    assert MercadoLibreConfig().redis_url == "redis://env"
    # The environment wins over .env whatever the name; within each, the module name wins.
    monkeypatch.delenv("INTELLIPOST_AI_CONTENT_REDIS_URL")
    clean_env.write_text("INTELLIPOST_AI_CONTENT_REDIS_URL=redis://module-dotenv\n")
    assert AiContentConfig().redis_url == "redis://env"


def test_production_refuses_a_default_secret_naming_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTELLIPOST_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="INTELLIPOST_MERCADOLIBRE_CLIENT_SECRET"):
        MercadoLibreConfig()
    monkeypatch.setenv("INTELLIPOST_MERCADOLIBRE_CLIENT_SECRET", "  ")
    with pytest.raises(ConfigError, match="INTELLIPOST_MERCADOLIBRE_CLIENT_SECRET is empty"):
        MercadoLibreConfig()


def test_production_accepts_real_secrets(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTELLIPOST_ENVIRONMENT", "production")
    for cls in CONFIG_CLASSES:
        for name, field in cls.model_fields.items():
            if isinstance(field.default, SecretStr):
                monkeypatch.setenv(cls.env_name(name), f"real-{name}-a8f3kq02l")
    # A signing key is checked to be a usable PEM, so it needs a real one.
    monkeypatch.setenv("INTELLIPOST_USER_JWT_PRIVATE_KEY", _ed25519_pem())
    # The token encryption key must be base64 of 32 bytes (AES-256).
    monkeypatch.setenv(
        "INTELLIPOST_MERCADOLIBRE_TOKEN_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode()
    )
    for cls in CONFIG_CLASSES:
        assert cls().is_production


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def test_production_refusal_is_one_clear_line_at_startup(tmp_path: Path) -> None:
    env = base_env(tmp_path, INTELLIPOST_ENVIRONMENT="production")
    result = subprocess.run(
        [sys.executable, "-m", "intellipost.mercadolibre"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr.decode()
    assert "refusing to start" in lines[0]
    assert "INTELLIPOST_MERCADOLIBRE_CLIENT_SECRET" in lines[0]


def _example_variables() -> dict[str, str]:
    text = (REPO / ".env.example").read_text()
    found = {}
    for line in text.splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match and match.group(1).startswith("INTELLIPOST_"):
            found[match.group(1)] = match.group(2)
    return found


def _class_variables() -> dict[str, str]:
    variables: dict[str, str] = {}
    for cls in CONFIG_CLASSES:
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = default.get_secret_value()
            if isinstance(default, list):
                rendered = ",".join(str(v) for v in default)
            elif isinstance(default, dict):
                import json

                rendered = json.dumps(default, separators=(",", ":"))
            elif isinstance(default, bool):
                rendered = str(default).lower()
            elif default is None:
                rendered = ""
            else:
                rendered = str(default)
            variables[cls.env_name(name)] = rendered
    return variables


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = _example_variables()
    classes = _class_variables()
    missing = sorted(set(classes) - set(example))
    unknown = sorted(set(example) - set(classes) - NON_CONFIG_VARIABLES)
    assert not missing, f".env.example lacks {missing}"
    assert not unknown, f".env.example has variables no config class reads: {unknown}"
    wrong = {k: (example[k], v) for k, v in classes.items() if example[k] != v}
    assert not wrong, f".env.example defaults differ from the classes (file, class): {wrong}"


def test_env_example_documents_every_variable() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?\s*INTELLIPOST_[A-Z0-9_]+=", line):
            assert i > 0, f"no comment above {line!r}"
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"
