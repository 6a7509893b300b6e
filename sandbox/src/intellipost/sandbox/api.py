"""Routes of the MercadoLibre sandbox."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
