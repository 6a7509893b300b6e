"""HTTP routes of the mercadolibre service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
