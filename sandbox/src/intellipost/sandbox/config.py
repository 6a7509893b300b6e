"""Settings of the MercadoLibre sandbox (``INTELLIPOST_SANDBOX_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from intellipost.shared.app import load_config
from intellipost.shared.config import BaseModuleConfig, module_config


class SandboxConfig(BaseModuleConfig):
    model_config = module_config("sandbox")
    module = "sandbox"

    port: int = Field(8010, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(12.0, gt=0, description="Largest upload (pictures).")


@lru_cache
def get_config() -> SandboxConfig:
    return load_config(SandboxConfig)
