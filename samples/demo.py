"""`make demo`: what a seller does, against a running `make run`, in one command.

Registers a user, logs in, connects the sandbox MercadoLibre account, creates a product
from the sample photos in samples/photos/ and a one-line prompt, waits for its content,
publishes it and prints the listing's permalink, the correlation id and where to find that
one trace in the logs. Every request carries the same ``X-Correlation-ID`` and the same
trace (``traceparent``), so the whole run is one story in every service's log lines.

    .venv/bin/python samples/demo.py [--gateway http://localhost:8000]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PHOTOS = Path(__file__).resolve().parent / "photos"
PROMPT = "Zapatillas running Topper Boost Run hombre talle 42 color rojo, nuevas en caja"
PRICE = "45999.90"
QUANTITY = "5"
PASSWORD = "Demo-Seller-2026!"  # noqa: S105 - a throwaway account on a local fleet
WAIT_SECONDS = 90.0

Out = Callable[[str], None]


class DemoError(Exception):
    """A step did not go as it should; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DemoResult:
    product_id: str
    item_id: str
    permalink: str
    correlation_id: str
    trace_id: str


class Demo:
    def __init__(self, gateway: str, out: Out) -> None:
        self.gateway = gateway.rstrip("/")
        self.out = out
        self.correlation_id = f"demo-{secrets.token_hex(6)}"
        self.trace_id = secrets.token_hex(16)
        # The demo is the trace's root: every request is a child of this one span.
        traceparent = f"00-{self.trace_id}-{secrets.token_hex(8)}-01"
        self.client = httpx.Client(
            base_url=self.gateway,
            timeout=60,
            headers={"X-Correlation-ID": self.correlation_id, "traceparent": traceparent},
        )

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(
                f"{method} {path}: the gateway at {self.gateway} does not answer "
                f"({type(exc).__name__}). Is `make run` going in another terminal?"
            ) from exc
        if response.status_code != expect:
            raise DemoError(f"{method} {path} answered {response.status_code}: {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def step(self, text: str) -> None:
        self.out(f"\n==> {text}")

    def run(self) -> DemoResult:
        self.step(f"Checking the fleet at {self.gateway}")
        info = self.call("GET", "/api/v1/info", 200)
        down = [c["name"] for c in info.get("components", []) if c.get("status") != "up"]
        if down:
            raise DemoError(f"not every component is up yet: {', '.join(down)}; wait and retry")
        self.out("    all components up")

        email = f"demo-{secrets.token_hex(4)}@example.com"
        self.step(f"Registering {email} and logging in")
        self.call(
            "POST",
            "/api/v1/auth/register",
            201,
            json={
                "email": email,
                "password": PASSWORD,
                "first_name": "Demo",
                "last_name": "Seller",
            },
        )
        tokens = self.call(
            "POST", "/api/v1/auth/login", 200, json={"email": email, "password": PASSWORD}
        )
        self.client.headers["Authorization"] = f"Bearer {tokens['access_token']}"

        self.step("Connecting the sandbox MercadoLibre account (OAuth with PKCE)")
        link = self.call("GET", "/api/v1/mercadolibre/connect", 200, params={"site": "MLA"})
        # A browser would show the consent page; the sandbox approves at once with approve=1.
        approval = httpx.get(
            f"{link['authorization_url']}&approve=1&nickname=DEMO_SELLER", timeout=30
        )
        if approval.status_code != 302:
            raise DemoError(f"the sandbox did not approve ({approval.status_code})")
        callback = httpx.URL(approval.headers["location"])
        connection = self.call("GET", callback.path, 200, params=dict(callback.params))
        self.out(f"    connected as {connection['nickname']} on {connection['site']}")

        photos = sorted(PHOTOS.iterdir())
        self.step(f"Creating a product from {len(photos)} photos and the prompt")
        self.out(f'    "{PROMPT}"')
        created = self.call(
            "POST",
            "/api/v1/products",
            201,
            data={"prompt_text": PROMPT, "price": PRICE, "quantity": QUANTITY},
            files=[
                ("images", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos
            ],
            headers={"Idempotency-Key": f"demo-create-{self.correlation_id}"},
        )
        product_id = created["id"]
        self.out(f"    product {product_id}: {created['status']}")

        self.step("Waiting for the AI content")
        product = self.wait(product_id, leaving="processing")
        content = product.get("content") or {}
        if product["status"] not in ("ready", "needs_review"):
            raise DemoError(f"generation ended {product['status']}: {product.get('failure')}")
        self.out(f"    {product['status']}: {content['title']}")
        self.out(
            f"    category {content['category']['id']} ({content['category']['name']}), "
            f"quality {content['quality']['score']}"
        )

        self.step("Publishing to MercadoLibre (the sandbox)")
        self.call(
            "POST",
            f"/api/v1/products/{product_id}/publish",
            202,
            headers={"Idempotency-Key": f"demo-publish-{self.correlation_id}"},
        )
        product = self.wait(product_id, leaving="publishing")
        if product["status"] != "published":
            raise DemoError(f"publication ended {product['status']}: {product.get('failure')}")
        listing = product["listing"]
        return DemoResult(
            product_id=product_id,
            item_id=listing["item_id"],
            permalink=listing["permalink"],
            correlation_id=self.correlation_id,
            trace_id=self.trace_id,
        )

    def wait(self, product_id: str, *, leaving: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            product = self.call("GET", f"/api/v1/products/{product_id}", 200)
            if product["status"] != leaving:
                return product
            if time.monotonic() > deadline:
                raise DemoError(f"still {leaving} after {WAIT_SECONDS:g} s")
            time.sleep(0.25)


def run_demo(gateway: str, out: Out = print) -> DemoResult:
    demo = Demo(gateway, out)
    try:
        result = demo.run()
    finally:
        demo.client.close()
    out(f"\nPublished: {result.permalink}")
    out(f"  item {result.item_id}, product {result.product_id}")
    out(f"\nCorrelation id: {result.correlation_id}   (trace id {result.trace_id})")
    out("Every line any service logged for this run carries both. To see them:")
    out(f"  in the `make run` terminal, look for cid={result.correlation_id[:8]}")
    out("  with JSON logs saved (make run LOG_FORMAT=json 2>&1 | tee var/fleet.log):")
    out(f"    grep '{result.correlation_id}' var/fleet.log")
    out("  with an OTLP collector (INTELLIPOST_OTEL_EXPORTER_ENDPOINT), search the trace id.")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gateway", default="http://localhost:8000", help="the gateway's URL")
    args = parser.parse_args(argv)
    try:
        run_demo(args.gateway)
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
