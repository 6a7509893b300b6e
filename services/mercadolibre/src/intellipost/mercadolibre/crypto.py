"""Encryption of marketplace tokens at rest (AES-256-GCM, key from config)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intellipost.mercadolibre.config import MercadoLibreConfig, decode_key

# A version tag in front of every value leaves room for key rotation later.
_VERSION = "v1"
_NONCE_BYTES = 12


class TokenDecryptError(Exception):
    """The stored value was not made with this key for this purpose."""


class TokenCipher:
    """Seals a token with a fresh nonce; ``context`` (owner and kind) is authenticated too,
    so a ciphertext copied to another row or column does not decrypt."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_config(cls, config: MercadoLibreConfig) -> TokenCipher:
        return cls(decode_key(config.token_encryption_key.get_secret_value()))

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str, *, context: str) -> str:
        version, _, payload = value.partition(".")
        if version != _VERSION:
            raise TokenDecryptError(f"unknown token format {version!r}")
        try:
            raw = base64.urlsafe_b64decode(payload)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise TokenDecryptError("token does not decrypt with the configured key") from exc
        return plain.decode()
