"""The image's HEALTHCHECK: GET /health of the container's component with urllib (no curl)."""

from __future__ import annotations

import os
import sys
import urllib.request

# The components' default ports (DESIGN §2); INTELLIPOST_<MODULE>_PORT overrides them.
DEFAULT_PORTS = {
    "gateway": 8000,
    "user": 8001,
    "product": 8002,
    "mercadolibre": 8003,
    "ai_content": 8004,
    "sandbox": 8010,
}


def main() -> int:
    component = os.environ["INTELLIPOST_COMPONENT"]
    prefix = f"INTELLIPOST_{component.upper()}_"
    port = os.environ.get(prefix + "PORT") or DEFAULT_PORTS[component]
    host = os.environ.get(prefix + "HOST") or "0.0.0.0"
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    # No proxy from the environment may sit between the probe and its own container.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{port}/health"
    try:
        with opener.open(url, timeout=4) as response:
            status = response.status
    except OSError as exc:  # URLError and HTTPError (a 503) are both OSErrors
        sys.stderr.write(f"{url}: {exc}\n")
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
