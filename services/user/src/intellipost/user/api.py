"""HTTP routes of the user service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
