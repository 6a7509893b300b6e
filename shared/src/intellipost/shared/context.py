"""Request-scoped context (correlation id, request id, user id) carried in contextvars."""

from __future__ import annotations

from contextvars import ContextVar

# contextvars are copied into tasks created while they are set, so background tasks and
# outgoing calls made on behalf of a request see the same values as the request itself.
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
# The caller's Authorization header, forwarded on service-to-service calls.
authorization_var: ContextVar[str | None] = ContextVar("authorization", default=None)
