"""Signing keys: the development key under var/, configured PEMs, rotation, production."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from intellipost.shared.auth import InvalidTokenError, JwksCache, TokenVerifier
from intellipost.shared.config import ConfigError
from intellipost.user.config import UserConfig
from intellipost.user.keys import (
    DEV_KEY_FILE,
    build_keyring,
    development_key,
    load_keyring,
    private_pem,
    public_pem,
    thumbprint,
)
from intellipost.user.tokens import issue_access_token
from tests.support import REPO, base_env

pytestmark = pytest.mark.usefixtures("isolated_env")


def verifier_for(jwks: dict[str, object]) -> TokenVerifier:
    cache = JwksCache("http://127.0.0.1:9/unused", max_age_seconds=300, min_refresh_seconds=0)
    cache.set_keys(jwks)
    return TokenVerifier(cache, issuer="intellipost-user", audience="intellipost")


def token_from(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey, tmp_path: Path) -> str:
    from datetime import UTC, datetime
    from uuid import uuid4

    return issue_access_token(
        build_keyring(key),
        UserConfig(var_dir=tmp_path),
        user_id=uuid4(),
        session_id=uuid4(),
        now=datetime.now(UTC),
    )


def test_the_development_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = development_key(tmp_path / "var")
    path = tmp_path / "var" / DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = development_key(tmp_path / "var")
    assert private_pem(again) == private_pem(first)
    assert [p.name for p in path.parent.iterdir()] == [DEV_KEY_FILE]


def test_processes_starting_together_agree_on_one_development_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(private_pem(development_key(tmp_path / "var")))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1


def test_a_configured_key_is_used_and_named_by_its_thumbprint(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    ring = load_keyring(private_pem(key).decode(), "", tmp_path)
    [jwk] = ring.jwks()["keys"]
    assert ring.kid == jwk["kid"] == thumbprint(jwk)
    assert not (tmp_path / DEV_KEY_FILE).exists()
    assert jwt.get_unverified_header(token_from(key, tmp_path))["kid"] == ring.kid


def test_thumbprint_matches_rfc_8037_example() -> None:
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_pem_on_one_line_with_escaped_newlines_is_accepted(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    one_line = private_pem(key).decode().strip().replace("\n", "\\n")
    assert load_keyring(one_line, "", tmp_path).kid == build_keyring(key).kid


async def test_rotation_keeps_the_previous_key_until_the_next_rotation(tmp_path: Path) -> None:
    a, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
    token_a = token_from(a, tmp_path)
    after_first = load_keyring(private_pem(b).decode(), public_pem(a), tmp_path)
    assert len(after_first.jwks()["keys"]) == 2
    assert await verifier_for(after_first.jwks()).verify(token_a)
    after_second = load_keyring(private_pem(c).decode(), public_pem(b), tmp_path)
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier_for(after_second.jwks()).verify(token_a)


def test_the_previous_key_equal_to_the_current_one_is_listed_once(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    assert len(load_keyring(private_pem(key).decode(), public_pem(key), tmp_path).published) == 1


async def test_an_es256_key_signs_tokens_the_shared_verifier_accepts(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ring = build_keyring(key)
    assert ring.alg == "ES256"
    principal = await verifier_for(ring.jwks()).verify(token_from(key, tmp_path))
    assert principal.claims["iss"] == "intellipost-user"


def test_production_refuses_to_start_without_a_signing_key() -> None:
    with pytest.raises(ConfigError, match="INTELLIPOST_USER_JWT_PRIVATE_KEY is empty"):
        UserConfig(environment="production")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("jwt_private_key", "not a pem", "INTELLIPOST_USER_JWT_PRIVATE_KEY is not an unencrypted"),
        (
            "jwt_private_key",
            private_pem(ec.generate_private_key(ec.SECP384R1())).decode(),
            "INTELLIPOST_USER_JWT_PRIVATE_KEY uses curve secp384r1; only Ed25519",
        ),
        (
            "jwt_previous_public_key",
            private_pem(Ed25519PrivateKey.generate()).decode(),
            "INTELLIPOST_USER_JWT_PREVIOUS_PUBLIC_KEY must be the public key only",
        ),
    ],
)
def test_an_unusable_key_setting_is_refused_by_name(field: str, value: str, message: str) -> None:
    overrides: dict[str, object] = {field: SecretStr(value) if "private" in field else value}
    with pytest.raises(ConfigError, match=message):
        UserConfig(**overrides)  # type: ignore[arg-type]


def test_production_without_a_key_exits_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "intellipost.user"],
        env=base_env(tmp_path, INTELLIPOST_ENVIRONMENT="production"),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr.decode()
    assert "refusing to start" in lines[0]
    assert "INTELLIPOST_USER_JWT_PRIVATE_KEY" in lines[0]
    assert not (tmp_path / "var" / DEV_KEY_FILE).exists()
