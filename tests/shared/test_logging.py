"""Tests for intellipost.shared.logging: schema, context, stdlib routing, helpers, redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import pytest
from loguru import logger as loguru_logger
from opentelemetry.sdk.trace import TracerProvider

import intellipost.shared.logging as logging_module
from intellipost.shared.context import correlation_id_var, request_id_var, user_id_var
from intellipost.shared.logging import (
    StructuredLogger,
    configure_logging,
    get_structured_logger,
    is_secret_name,
    redact,
    redact_text,
)

SCHEMA = [
    "timestamp",
    "level",
    "logger",
    "message",
    "service",
    "environment",
    "version",
    "correlation_id",
    "request_id",
    "trace_id",
    "span_id",
    "module",
    "function",
    "line",
]
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsIm5hbWUiOiJBbmEifQ.c2lnbmF0dXJlX2hlcmU"
VISA = "4111 1111 1111 1111"  # a well-known test card number; passes the Luhn check
STDLIB_LOGGERS = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "sqlalchemy"]


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave loguru, stdlib logging and this module as they were before each test."""
    monkeypatch.setattr(logging_module, "_sink", logging_module._sink)
    monkeypatch.setattr(logging_module, "_min_level", logging_module._min_level)
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        for name in STDLIB_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    yield
    loguru_logger.remove()
    loguru_logger.add(sys.stderr)
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


@pytest.fixture
def out() -> io.StringIO:
    buffer = io.StringIO()
    configure_logging(service="user", environment="test", version="1.2.3", sink=buffer)
    return buffer


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def only_record(buffer: io.StringIO) -> dict[str, Any]:
    [record] = records(buffer)
    return record


def next_line() -> int:
    """The line number of the statement after the caller's."""
    caller = sys._getframe(1)
    return caller.f_lineno + 1


@contextmanager
def context_var(var: ContextVar[str | None], value: str) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(d * 2, 10)) for d in digits[1::2])
    return total % 10 == 0


# --------------------------------------------------------------------------- schema


def test_json_line_has_every_schema_field_in_order(out: io.StringIO) -> None:
    log = get_structured_logger("orders")
    line = next_line()
    log.info("order placed", order_id="o-1", amount=12.5, items=3)

    assert out.getvalue().count("\n") == 1
    record = only_record(out)
    assert list(record)[: len(SCHEMA)] == SCHEMA
    assert list(record)[len(SCHEMA) :] == ["order_id", "amount", "items"]
    assert record["level"] == "INFO"
    assert record["logger"] == "intellipost.orders"
    assert record["message"] == "order placed"
    assert (record["service"], record["environment"], record["version"]) == (
        "user",
        "test",
        "1.2.3",
    )
    for key in ("correlation_id", "request_id", "trace_id", "span_id"):
        assert record[key] is None
    assert "user_id" not in record
    assert record["module"] == "test_logging"
    assert record["function"] == "test_json_line_has_every_schema_field_in_order"
    assert record["line"] == line
    assert (record["order_id"], record["amount"], record["items"]) == ("o-1", 12.5, 3)


def test_timestamp_is_utc_iso8601_with_milliseconds(out: io.StringIO) -> None:
    before = datetime.now(UTC)
    get_structured_logger("orders").info("tick")
    after = datetime.now(UTC)

    stamp = only_record(out)["timestamp"]
    assert TIMESTAMP.match(stamp), stamp
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= moment <= after


def test_fields_are_flat_and_cannot_overwrite_schema_keys(out: io.StringIO) -> None:
    get_structured_logger("orders").info(
        "shipped {not a format}", address={"city": "Lima"}, level="high", message="x"
    )

    record = only_record(out)
    assert "extra" not in record
    assert record["address"] == {"city": "Lima"}
    assert record["message"] == "shipped {not a format}"
    assert record["level"] == "INFO"
    assert (record["field_level"], record["field_message"]) == ("high", "x")


def test_get_structured_logger_is_cached_and_prefixed() -> None:
    assert get_structured_logger("user") is get_structured_logger("user")
    assert get_structured_logger("user").name == "intellipost.user"
    assert get_structured_logger("intellipost.gateway").name == "intellipost.gateway"


def test_bind_adds_fields_to_every_line_of_the_bound_logger(out: io.StringIO) -> None:
    log = get_structured_logger("orders")
    bound = log.bind(order_id="o-9", attempt=1)
    assert isinstance(bound, StructuredLogger)
    bound.info("first")
    bound.bind(attempt=2).warning("second", carrier="dhl")
    log.info("unbound")

    first, second, unbound = records(out)
    assert (first["order_id"], first["attempt"]) == ("o-9", 1)
    assert (second["order_id"], second["attempt"], second["carrier"]) == ("o-9", 2, "dhl")
    assert "order_id" not in unbound


# --------------------------------------------------------------------------- context


def test_ids_come_from_the_contextvars(out: io.StringIO) -> None:
    log = get_structured_logger("user")
    with (
        context_var(correlation_id_var, "cid-1"),
        context_var(request_id_var, "rid-1"),
        context_var(user_id_var, "u-42"),
    ):
        log.info("inside")
    log.info("outside")
    log.info("explicit", user_id="u-7")

    inside, outside, explicit = records(out)
    assert (inside["correlation_id"], inside["request_id"], inside["user_id"]) == (
        "cid-1",
        "rid-1",
        "u-42",
    )
    assert outside["correlation_id"] is None
    assert "user_id" not in outside
    assert explicit["user_id"] == "u-7"


def test_trace_and_span_ids_come_from_the_current_span(out: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    log = get_structured_logger("user")
    with tracer.start_as_current_span("op") as span:
        log.info("traced")
        context = span.get_span_context()
    log.info("untraced")

    traced, untraced = records(out)
    assert traced["trace_id"] == format(context.trace_id, "032x")
    assert traced["span_id"] == format(context.span_id, "016x")
    assert re.fullmatch(r"[0-9a-f]{32}", traced["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", traced["span_id"])
    assert untraced["trace_id"] is None
    assert untraced["span_id"] is None


# --------------------------------------------------------------------------- exceptions


def _fail() -> None:
    raise ValueError("could not log in with password=hunter2")


def test_exception_adds_type_message_and_stack(out: io.StringIO) -> None:
    log = get_structured_logger("user")
    try:
        _fail()
    except ValueError:
        line = next_line()
        log.exception("login crashed", attempt=2)

    record = only_record(out)
    assert record["level"] == "ERROR"
    assert record["line"] == line
    assert record["attempt"] == 2
    exception = record["exception"]
    assert list(exception) == ["type", "message", "stack"]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "could not log in with password=[REDACTED]"
    assert exception["stack"].startswith("Traceback (most recent call last):")
    assert "in _fail" in exception["stack"]
    assert "hunter2" not in out.getvalue()


def test_exc_info_field_attaches_an_exception(out: io.StringIO) -> None:
    log = get_structured_logger("user")
    error = KeyError("sku")
    try:
        raise error
    except KeyError:
        log.error("lookup failed", exc_info=True)
    log.warning("kept for later", exc_info=error)
    log.info("nothing to attach", exc_info=False)

    current, given, none = records(out)
    assert current["exception"]["type"] == "KeyError"
    assert given["exception"]["type"] == "KeyError"
    assert "exception" not in none
    assert "exc_info" not in current


def test_exception_outside_except_logs_without_exception(out: io.StringIO) -> None:
    get_structured_logger("user").exception("no exception active")
    assert "exception" not in only_record(out)


# --------------------------------------------------------------------------- stdlib routing


def test_stdlib_record_is_written_once_with_its_own_logger_and_call_site(
    out: io.StringIO,
) -> None:
    line = next_line()
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)

    record = only_record(out)
    assert list(record)[: len(SCHEMA)] == SCHEMA
    assert record["logger"] == "uvicorn.error"
    assert record["message"] == "Started server process [42]"
    assert record["service"] == "user"
    assert record["module"] == "test_logging"
    assert record["function"] == (
        "test_stdlib_record_is_written_once_with_its_own_logger_and_call_site"
    )
    assert record["line"] == line


def test_library_handlers_are_replaced_and_uvicorn_access_is_silenced() -> None:
    stray = io.StringIO()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
        logging.getLogger(name).addHandler(logging.StreamHandler(stray))
        logging.getLogger(name).propagate = False
    buffer = io.StringIO()
    configure_logging(service="gw", environment="test", version="1", sink=buffer)

    logging.getLogger("uvicorn.error").warning("shutting down")
    logging.getLogger("httpx").warning("HTTP Request: GET http://user/health 503")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    # Even a handler uvicorn attaches afterwards must not print its access line.
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(stray))
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')

    assert [r["logger"] for r in records(buffer)] == ["uvicorn.error", "httpx"]
    assert stray.getvalue() == ""


def test_stdlib_extra_fields_and_exceptions_are_kept(out: io.StringIO) -> None:
    try:
        _fail()
    except ValueError:
        logging.getLogger("sqlalchemy").exception("query failed", extra={"table": "users"})

    record = only_record(out)
    assert record["logger"] == "sqlalchemy"
    assert record["level"] == "ERROR"
    assert record["table"] == "users"
    assert record["exception"]["type"] == "ValueError"


def test_configuring_twice_does_not_duplicate_lines() -> None:
    first = io.StringIO()
    configure_logging(service="user", environment="test", version="1", sink=first)
    configure_logging(service="user", environment="test", version="1", sink=first)
    get_structured_logger("user").info("ours")
    logging.getLogger("uvicorn.error").info("theirs")

    assert [r["message"] for r in records(first)] == ["ours", "theirs"]
    assert len(logging.getLogger().handlers) == 1

    second = io.StringIO()
    configure_logging(service="user", environment="test", version="2", sink=second)
    get_structured_logger("user").info("after")
    assert len(records(first)) == 2
    assert only_record(second)["version"] == "2"


def test_records_below_the_level_do_no_work() -> None:
    buffer = io.StringIO()
    configure_logging(service="u", environment="t", version="1", level="WARNING", sink=buffer)
    rendered: list[str] = []

    class Watched:
        def __str__(self) -> str:
            rendered.append("rendered")
            return "watched"

    log = get_structured_logger("user")
    log.debug("d", thing=Watched())
    log.info("i", thing=Watched())
    log.access(
        method="GET", path="/", route="/", status=200, duration_ms=1, response_bytes=0, client=None
    )
    logging.getLogger("httpx").info("i")
    log.warning("w", thing=Watched())

    assert [r["message"] for r in records(buffer)] == ["w"]
    assert rendered == ["rendered"]


# --------------------------------------------------------------------------- event helpers


def test_performance_record(out: io.StringIO) -> None:
    line = next_line()
    get_structured_logger("product").performance("db.query", 12.3456, table="products")

    record = only_record(out)
    assert record["level"] == "INFO"
    assert record["line"] == line
    assert record["event_type"] == "performance"
    assert record["operation"] == "db.query"
    assert record["duration_ms"] == pytest.approx(12.346)
    assert record["table"] == "products"
    assert "db.query" in record["message"]


@pytest.mark.parametrize(
    ("severity", "level"),
    [("low", "INFO"), ("medium", "WARNING"), ("high", "ERROR"), ("critical", "ERROR")],
)
def test_security_event_record(out: io.StringIO, severity: Any, level: str) -> None:
    line = next_line()
    get_structured_logger("user").security_event("login_failed", severity, username="bob")

    record = only_record(out)
    assert record["level"] == level
    assert record["message"] == "security event: login_failed"
    assert record["event_type"] == "security"
    assert record["security_event"] == "login_failed"
    assert record["severity"] == severity
    assert record["username"] == "bob"
    assert (record["function"], record["line"]) == ("test_security_event_record", line)


def test_audit_record(out: io.StringIO) -> None:
    get_structured_logger("product").audit("delete", "listing:42", reason="duplicate")

    record = only_record(out)
    assert record["level"] == "INFO"
    assert record["event_type"] == "audit"
    assert (record["action"], record["resource"], record["reason"]) == (
        "delete",
        "listing:42",
        "duplicate",
    )


def test_access_record(out: io.StringIO) -> None:
    line = next_line()
    get_structured_logger("gateway").access(
        method="GET",
        path="/api/v1/info",
        route="/api/v1/info",
        status=200,
        duration_ms=3.2146,
        response_bytes=512,
        client="10.0.0.7",
        upstream="user",
    )

    record = only_record(out)
    assert record["message"] == "GET /api/v1/info 200 3.21ms"
    assert record["level"] == "INFO"
    assert record["line"] == line
    assert {k: record[k] for k in list(record)[len(SCHEMA) :]} == {
        "event_type": "access",
        "method": "GET",
        "path": "/api/v1/info",
        "route": "/api/v1/info",
        "status": 200,
        "duration_ms": 3.215,
        "response_bytes": 512,
        "client": "10.0.0.7",
        "upstream": "user",
    }


def test_access_path_query_secrets_are_masked(out: io.StringIO) -> None:
    get_structured_logger("gateway").access(
        method="GET",
        path="/callback?code=abc&access_token=s3cr3t",
        route=None,
        status=302,
        duration_ms=1.0,
        response_bytes=0,
        client=None,
    )

    assert "s3cr3t" not in out.getvalue()
    assert only_record(out)["path"] == "/callback?code=abc&access_token=[REDACTED]"


def test_timed_context_manager(out: io.StringIO) -> None:
    log = get_structured_logger("product")
    line = next_line()
    with log.timed("db.query", table="products"):
        pass

    record = only_record(out)
    assert record["event_type"] == "performance"
    assert record["operation"] == "db.query"
    assert record["success"] is True
    assert record["duration_ms"] >= 0
    assert record["table"] == "products"
    assert record["function"] == "test_timed_context_manager"
    assert line <= record["line"] <= line + 1


def test_timed_context_manager_failure_reraises(out: io.StringIO) -> None:
    log = get_structured_logger("product")
    with pytest.raises(ValueError, match="password"), log.timed("db.query"):
        _fail()

    record = only_record(out)
    assert record["success"] is False
    assert record["error_type"] == "ValueError"
    assert record["function"] == "test_timed_context_manager_failure_reraises"


def test_timed_sync_decorator(out: io.StringIO) -> None:
    log = get_structured_logger("product")

    @log.timed("compute", kind="sync")
    def compute(x: int) -> int:
        return x * 2

    assert compute.__name__ == "compute"
    line = next_line()
    assert compute(21) == 42

    record = only_record(out)
    assert (record["operation"], record["success"], record["kind"]) == ("compute", True, "sync")
    assert (record["function"], record["line"]) == ("test_timed_sync_decorator", line)


def test_timed_sync_decorator_failure(out: io.StringIO) -> None:
    @get_structured_logger("product").timed("explode")
    def explode() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        explode()

    record = only_record(out)
    assert (record["success"], record["error_type"]) == (False, "RuntimeError")


async def test_timed_async_decorator(out: io.StringIO) -> None:
    log = get_structured_logger("product")

    @log.timed("fetch")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    @log.timed("fetch_fail")
    async def fetch_fail() -> None:
        await asyncio.sleep(0)
        raise LookupError("gone")

    line = next_line()
    assert await fetch(1) == 2
    with pytest.raises(LookupError):
        await fetch_fail()

    ok, failed = records(out)
    assert (ok["operation"], ok["success"]) == ("fetch", True)
    assert ok["duration_ms"] >= 5
    assert (ok["function"], ok["line"]) == ("test_timed_async_decorator", line)
    assert (failed["operation"], failed["success"], failed["error_type"]) == (
        "fetch_fail",
        False,
        "LookupError",
    )


def test_unconfigured_logger_falls_back_to_loguru(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging_module, "_sink", None)
    monkeypatch.setattr(logging_module, "_min_level", 0)
    loguru_logger.remove()
    seen: list[Any] = []
    loguru_logger.add(lambda message: seen.append(message.record), format="{message}")
    line = next_line()
    get_structured_logger("user").info("before configure {x}", order_id="o-1")

    [record] = seen
    assert record["message"] == "before configure {x}"
    assert record["extra"] == {"order_id": "o-1"}
    assert (record["function"], record["line"]) == (
        "test_unconfigured_logger_falls_back_to_loguru",
        line,
    )


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "user_password",
        "passwd",
        "x-api-key",
        "X-Api-Key",
        "apiKey",
        "apikey",
        "db_secret",
        "client_secret",
        "token",
        "auth_token",
        "accessToken",
        "refresh_token",
        "csrftoken",
        "authorization",
        "Proxy-Authorization",
        "cookie",
        "Set-Cookie",
        "credential",
        "credentials",
        "private_key",
        "session",
        "session_id",
        "sessionId",
        "sessionid",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "author",
        "keyboard",
        "monkey",
        "key",
        "auth",
        "session_count",
        "token_count",
        "prompt_tokens",
        "api_key_id",
        "password_reset_sent",
        "username",
        "obsession",
    ],
)
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_masks_secret_keys_at_any_depth() -> None:
    value = {
        "user": {"name": "ana", "password": "hunter2", "Session-Id": "s-1"},
        "headers": [{"Authorization": "Basic abc"}, ("x", {"x-api-key": "k-1"})],
        "token_count": 7,
        "client_secret": {"nested": "whole value goes"},
    }

    assert redact(value) == {
        "user": {"name": "ana", "password": "[REDACTED]", "Session-Id": "[REDACTED]"},
        "headers": [{"Authorization": "[REDACTED]"}, ["x", {"x-api-key": "[REDACTED]"}]],
        "token_count": 7,
        "client_secret": "[REDACTED]",
    }


def test_secret_fields_are_masked_in_records(out: io.StringIO) -> None:
    get_structured_logger("user").info(
        "login",
        username="ana",
        password="hunter2",
        body={"refresh_token": "r-1", "items": [{"api_key": "k-1", "sku": "A1"}]},
        note=f"sent Bearer {JWT}",
    )

    record = only_record(out)
    assert record["username"] == "ana"
    assert record["password"] == "[REDACTED]"
    assert record["body"] == {
        "refresh_token": "[REDACTED]",
        "items": [{"api_key": "[REDACTED]", "sku": "A1"}],
    }
    assert record["note"] == "sent Bearer [REDACTED]"
    for secret in ("hunter2", "r-1", "k-1", JWT):
        assert secret not in out.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
        (
            "calling upstream with Bearer abc.def-_~+/ ok",
            "calling upstream with Bearer [REDACTED] ok",
        ),
        (f"token is {JWT} now", "token is [REDACTED_JWT] now"),
        ("login password=hunter2 user=bob", "login password=[REDACTED] user=bob"),
        (
            "retry with db_password: hunter2, host: db",
            "retry with db_password: [REDACTED], host: db",
        ),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
        ("GET /cb?access_token=abc&state=xyz", "GET /cb?access_token=[REDACTED]&state=xyz"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic [REDACTED]"),
        ("dsn postgresql://app:s3cret@db:5432/app", "dsn postgresql://app:[REDACTED]@db:5432/app"),
        (f"paid with {VISA} today", "paid with [REDACTED_CARD] today"),
        ("card 4111-1111-1111-1111", "card [REDACTED_CARD]"),
        ("card 4111111111111111.", "card [REDACTED_CARD]."),
    ],
)
def test_redact_text_masks_secrets_in_place(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "authentication failed for user bob",
        "the key was rotated",
        "monkey business",
        "author: Ana",
        "keyboard: qwerty",
        "token_count=1200 session_count=3",
        "the bearer of bad news",
        "order 4111111111111112 was placed",  # 16 digits, fails Luhn
        "at 1733344268124 ms",  # an epoch-millisecond timestamp that fails Luhn
        "phone 1234-5678",
        "GET /api/v1/info 200 3.21ms",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    for run in re.findall(r"\d{13,19}", text):
        assert not luhn_ok(run)
    assert redact_text(text) == text


def test_message_and_stdlib_messages_are_redacted(out: io.StringIO) -> None:
    get_structured_logger("gateway").warning(f"rejected Authorization: Bearer {JWT}")
    logging.getLogger("httpx").warning("retrying with password=%s", "hunter2")

    ours, theirs = records(out)
    assert ours["message"] == "rejected Authorization: Bearer [REDACTED]"
    assert theirs["message"] == "retrying with password=[REDACTED]"
    assert JWT not in out.getvalue()
    assert "hunter2" not in out.getvalue()


# --------------------------------------------------------------------------- formats and sinks


def test_console_format_is_one_readable_line() -> None:
    buffer = io.StringIO()
    configure_logging(service="u", environment="dev", version="1", fmt="console", sink=buffer)
    with context_var(correlation_id_var, "abcd1234-ffff-0000"):
        get_structured_logger("user").info(
            "user created", user="ana", note="two words", password="hunter2"
        )

    text = buffer.getvalue()
    assert text.count("\n") == 1
    assert "\x1b[" not in text
    assert re.match(r"^\d{2}:\d{2}:\d{2}\.\d{3} INFO  intellipost\.user  user created  ", text)
    assert 'user=ana note="two words" password=[REDACTED]' in text
    assert text.rstrip().endswith("cid=abcd1234")
    assert "hunter2" not in text


def test_console_format_is_coloured_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    buffer = Terminal()
    configure_logging(service="u", environment="dev", version="1", fmt="console", sink=buffer)
    get_structured_logger("user").warning("careful")

    assert "\x1b[33mWARNING" in buffer.getvalue()


def test_binary_backed_stream_gets_utf8_json_lines() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    configure_logging(service="u", environment="t", version="1", sink=stream)
    get_structured_logger("user").info("olá", city="São Paulo")

    [line] = raw.getvalue().splitlines()
    assert json.loads(line)["city"] == "São Paulo"


def test_default_sink_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(service="u", environment="t", version="1")
    get_structured_logger("user").info("to stdout")

    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["message"] == "to stdout"


def test_unserializable_fields_never_raise(out: io.StringIO) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque password=hunter2"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    get_structured_logger("user").info(
        "odd values",
        opaque=Opaque(),
        broken=Broken(),
        tags={"a"},
        by_id={1: "one"},
        huge=2**70,
        when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        raw=b"\x00",
    )

    record = only_record(out)
    assert record["opaque"] == "opaque password=[REDACTED]"
    assert record["broken"] == "<unprintable Broken>"
    assert record["tags"] == ["a"]
    assert record["by_id"] == {"1": "one"}
    assert record["huge"] == str(2**70)
    assert record["when"] == "2026-01-02T03:04:05+00:00"
    assert record["raw"] == "b'\\x00'"


def test_a_field_that_cannot_be_rendered_still_leaves_a_line(out: io.StringIO) -> None:
    looped: list[Any] = []
    looped.append(looped)

    get_structured_logger("user").info("loop", looped=looped)

    record = only_record(out)
    assert record["message"] == "loop"
    assert record["log_error"].startswith("RecursionError")


def test_a_failing_stream_does_not_raise(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    configure_logging(service="u", environment="t", version="1", sink=stream)
    stream.close()

    get_structured_logger("user").info("into the void")

    assert "write failed" in capsys.readouterr().err


def test_httpx_per_request_info_lines_are_dropped_but_its_warnings_kept() -> None:
    buffer = io.StringIO()
    configure_logging(service="t", environment="test", version="1", sink=buffer)
    logging.getLogger("httpx").info('HTTP Request: GET http://user/info "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("connection pool is full")
    assert [r["message"] for r in records(buffer)] == ["connection pool is full"]
