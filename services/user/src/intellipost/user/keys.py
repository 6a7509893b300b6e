"""Access-token signing keys: the current private key, the previous public one, the JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from intellipost.shared.logging import get_structured_logger

SigningKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
DEV_KEY_FILE = "user_signing_key.pem"

log = get_structured_logger("user.keys")


class UnusableKeyError(ValueError):
    """A configured key that cannot be used; the message names what is wrong, not the key."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """What signs access tokens now, and every public key a valid token may name."""

    signing_key: SigningKey
    kid: str
    alg: str
    published: tuple[dict[str, Any], ...]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(jwk) for jwk in self.published]}


def algorithm_for(key: SigningKey | PublicKey) -> str:
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise UnusableKeyError(f"uses curve {key.curve.name}; only Ed25519 and EC P-256 are supported")


def public_jwk(key: PublicKey) -> dict[str, Any]:
    """The public JWK with ``kid`` (its RFC 7638 thumbprint), ``alg`` and ``use``."""
    alg = algorithm_for(key)
    if isinstance(key, Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    jwk = {k: v for k, v in jwk.items() if k in {"kty", "crv", "x", "y"}}
    jwk.update({"kid": thumbprint(jwk), "alg": alg, "use": "sig"})
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, base64url."""
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _pem_bytes(pem: str) -> bytes:
    # A PEM put in one environment line often arrives with literal "\n" for its newlines.
    return pem.strip().replace("\\n", "\n").encode()


def load_private_pem(pem: str) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=None)
    except (ValueError, TypeError) as exc:
        raise UnusableKeyError("is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise UnusableKeyError("must be an Ed25519 or EC P-256 private key")
    algorithm_for(key)
    return key


def load_public_pem(pem: str) -> PublicKey:
    if "PRIVATE KEY" in pem:
        raise UnusableKeyError("must be the public key only (it is not a secret setting)")
    try:
        key = serialization.load_pem_public_key(_pem_bytes(pem))
    except (ValueError, TypeError) as exc:
        raise UnusableKeyError("is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise UnusableKeyError("must be an Ed25519 or EC P-256 public key")
    algorithm_for(key)
    return key


def private_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: SigningKey | PublicKey) -> str:
    public = key if isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey) else None
    if public is None:
        assert isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
        public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def development_key(var_dir: Path) -> SigningKey:
    """The key under ``var/``, made on first use and kept (mode 0600) for every restart.

    Written to a temporary file and hard-linked into place, so two processes starting at
    once end up with the same key: the second link fails and that process reads the first.
    """
    path = var_dir / DEV_KEY_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = var_dir / f".{DEV_KEY_FILE}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(private_pem(Ed25519PrivateKey.generate()))
            os.link(tmp, path)
            log.info("generated a development signing key", path=str(path))
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return load_private_pem(path.read_text())


def build_keyring(private_key: SigningKey, previous_public: PublicKey | None = None) -> KeyRing:
    current = public_jwk(private_key.public_key())
    published = [current]
    if previous_public is not None:
        previous = public_jwk(previous_public)
        if previous["kid"] != current["kid"]:
            published.append(previous)
    return KeyRing(
        signing_key=private_key,
        kid=current["kid"],
        alg=current["alg"],
        published=tuple(published),
    )


def load_keyring(private_pem_text: str, previous_public_pem: str, var_dir: Path) -> KeyRing:
    """The configured key (production), else the development key kept under ``var_dir``."""
    key = load_private_pem(private_pem_text) if private_pem_text.strip() else None
    if key is None:
        key = development_key(var_dir)
    previous = load_public_pem(previous_public_pem) if previous_public_pem.strip() else None
    return build_keyring(key, previous)
