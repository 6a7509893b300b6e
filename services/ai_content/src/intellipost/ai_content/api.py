"""HTTP routes of the ai content service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
