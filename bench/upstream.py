"""The benchmark upstream: a FastAPI app answering with 200 bytes of JSON, like a service."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

# 200 bytes exactly, like a small API answer.
BODY = (b'{"id":"MLA123456789","title":"Zapatillas Nike Air Max 90 blancas","price":149999,'
        b'"currency_id":"ARS","status":"active","available_quantity":3,"pad":"'
        b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')  # fmt: skip
assert len(BODY) == 200, len(BODY)

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@app.get("/{path:path}")
async def item(path: str) -> Response:
    return Response(BODY, media_type="application/json")
