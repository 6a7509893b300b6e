"""The few HTML pages a person sees: the approve page and an item's public page."""

from __future__ import annotations

from html import escape
from typing import Any

from intellipost.sandbox.catalog import SITES

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
    "fieldset{border:1px solid #ccc;padding:1rem}label{display:block;margin:.5rem 0}"
    "button{padding:.5rem 1.5rem;margin-right:.5rem}.note{color:#666;font-size:.9rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='es'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def approve_page(params: dict[str, str]) -> str:
    """Asks the seller to let the app use their account; posts the decision back."""
    hidden = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
        for k, v in params.items()
        if k not in {"nickname", "site_id", "approve"}
    )
    options = "".join(
        f"<option value='{site}'{' selected' if site == params.get('site_id', 'MLA') else ''}>"
        f"{site}</option>"
        for site in SITES
    )
    nickname = escape(params.get("nickname", "TEST_SELLER"))
    body = (
        "<h1>MercadoLibre sandbox</h1>"
        f"<p>The application <b>{escape(params.get('client_id', ''))}</b> asks to read and "
        "publish on your behalf (<code>offline_access read write</code>).</p>"
        f"<form method='post' action='/authorization'>{hidden}<fieldset>"
        f"<label>Test seller nickname <input name='nickname' value='{nickname}'></label>"
        f"<label>Site <select name='site_id'>{options}</select></label></fieldset><p>"
        "<button name='decision' value='approve'>Approve</button>"
        "<button name='decision' value='deny'>Deny</button></p></form>"
        "<p class='note'>An in-memory stand-in of MercadoLibre: no real account is used. "
        "Add <code>&amp;approve=1</code> to the URL to approve without this page.</p>"
    )
    return _page("Authorize application", body)


def error_page(message: str) -> str:
    return _page("Authorization error", f"<h1>Authorization error</h1><p>{escape(message)}</p>")


def item_page(item: dict[str, Any], description: str | None) -> str:
    pictures = "".join(
        f"<img src='{escape(p['url'])}' alt='' style='max-width:45%;margin:2px'>"
        for p in item["pictures"]
    )
    body = (
        f"<h1>{escape(item['title'])}</h1><p><b>{escape(str(item['currency_id']))} "
        f"{escape(str(item['price']))}</b> · {escape(item['condition'])} · "
        f"{escape(item['status'])}</p><div>{pictures}</div>"
        f"<pre style='white-space:pre-wrap'>{escape(description or '')}</pre>"
        f"<p class='note'>{escape(item['id'])} in the MercadoLibre sandbox.</p>"
    )
    return _page(item["title"], body)
