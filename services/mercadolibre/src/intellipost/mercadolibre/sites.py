"""The MercadoLibre sites the service publishes on: auth host and currency of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

SiteId = Literal["MLA", "MLB", "MLM", "MLC", "MCO"]
REAL_API_HOST = "api.mercadolibre.com"


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    auth_host: str
    currency: str


SITES: dict[str, Site] = {
    "MLA": Site("MLA", "auth.mercadolibre.com.ar", "ARS"),
    "MLB": Site("MLB", "auth.mercadolivre.com.br", "BRL"),
    "MLM": Site("MLM", "auth.mercadolibre.com.mx", "MXN"),
    "MLC": Site("MLC", "auth.mercadolibre.cl", "CLP"),
    "MCO": Site("MCO", "auth.mercadolibre.com.co", "COP"),
}


def authorization_base(site: str, *, api_base_url: str, auth_base_url: str | None) -> str:
    """Where a seller of ``site`` approves the app.

    An explicit ``auth_base_url`` wins. Against the real API each site has its own auth host;
    any other API (the sandbox, a proxy of it) serves its own ``/authorization`` page.
    """
    if auth_base_url:
        return auth_base_url.rstrip("/")
    if urlsplit(api_base_url).hostname == REAL_API_HOST:
        return f"https://{SITES[site].auth_host}"
    return api_base_url.rstrip("/")
