"""HTTP routes of the product service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
