"""Structured, redacted JSON logging for every IntelliPost service, built on loguru."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Literal, Self, TextIO, cast
from uuid import UUID

import orjson
from loguru import logger as _loguru
from opentelemetry.trace import INVALID_SPAN, get_current_span

from intellipost.shared.context import correlation_id_var, request_id_var, user_id_var

if TYPE_CHECKING:
    from loguru import Message

__all__ = [
    "StructuredLogger",
    "configure_logging",
    "get_structured_logger",
    "is_secret_name",
    "redact",
    "redact_text",
]

REDACTED: Final = "[REDACTED]"

# --------------------------------------------------------------------------- redaction

_SECRET_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "set_cookie",
        "client_secret",
        "credential",
        "credentials",
        "private_key",
        "session",
        "session_id",
        "sessionid",
    }
)
# Words no innocent name ends with, so they also count when glued on: csrftoken, dbpassword.
_GLUED_SUFFIXES: Final = ("password", "passwd", "secret", "token", "apikey")
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NAME_SEPARATORS: Final = re.compile(r"[-. ]+")
_secret_name_cache: dict[str, bool] = {}


def _compute_is_secret_name(name: str) -> bool:
    normalized = _NAME_SEPARATORS.sub("_", _CAMEL_BOUNDARY.sub("_", name)).lower()
    words = normalized.split("_")
    # Compare the last one, two and three words so `db_secret`, `x_api_key` and
    # `user_session_id` match while `session_count` and `token_count` do not.
    for n in (1, 2, 3):
        if "_".join(words[-n:]) in _SECRET_WORDS:
            return True
    return words[-1].endswith(_GLUED_SUFFIXES)


def is_secret_name(name: str) -> bool:
    """Whether a field called `name` holds a secret, so its value must never be logged.

    The name is split into words on `_`, `-`, `.`, spaces and camelCase, then lowercased.
    It is secret when its last words are one of the secret words (password, passwd,
    secret, token, access_token, refresh_token, api_key, apikey, authorization, cookie,
    set_cookie, client_secret, credential(s), private_key, session, session_id, sessionid)
    or its last word ends with password, passwd, secret, token or apikey (`csrftoken`).

    So `password`, `user_password`, `x-api-key`, `db_secret`, `auth_token`, `accessToken`,
    `session_id` and `sessionid` are secret; `author`, `keyboard`, `monkey`,
    `session_count`, `token_count`, `prompt_tokens` and `api_key_id` are not: a name that
    only starts with or contains a secret word describes something about the secret
    (a count, an id, an expiry), not the secret itself.
    """
    cached = _secret_name_cache.get(name)
    if cached is None:
        cached = _compute_is_secret_name(name)
        if len(_secret_name_cache) < 4096:  # names are code-defined; cap in case they aren't
            _secret_name_cache[name] = cached
    return cached


# `name=value`, `name: value` and `"name": "value"`; the name is judged by is_secret_name.
_KEY_VALUE: Final = re.compile(
    r"""(?<![\w.-])(?P<q>["']?)(?P<name>[A-Za-z_][\w.-]*)(?P=q)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<scheme>(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+)?"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&{\[]+)"""
)
# Capitalised only: "the bearer of bad news" is prose, "Bearer abc" a credential.
_BEARER: Final = re.compile(r"\b(Bearer|BEARER)\s+[A-Za-z0-9._~+/-]+=*")
_JWT: Final = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_CARD: Final = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_URL_PASSWORD: Final = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")


def _mask_key_value(match: re.Match[str]) -> str:
    if not is_secret_name(match["name"]):
        return match[0]
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    q = match["q"]
    return f"{q}{match['name']}{q}{match['sep']}{match['scheme'] or ''}{quote}{REDACTED}{quote}"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = match[0].replace(" ", "").replace("-", "")
    return "[REDACTED_CARD]" if _luhn_ok(digits) else match[0]


def redact_text(text: str) -> str:
    """Mask credentials inside free text, leaving the rest of it readable.

    Bearer tokens become `Bearer [REDACTED]`, JWTs `[REDACTED_JWT]`, the value of a
    `name=value` / `name: value` / `"name": "value"` pair with a secret name (see
    `is_secret_name`) `[REDACTED]`, the password in `scheme://user:password@host`
    `[REDACTED]`, and 13-19 digit runs that pass the Luhn check `[REDACTED_CARD]`.
    """
    # Each pattern only runs when a character it needs is present: most messages hold
    # no secret at all and should cost a few substring tests.
    if "=" in text or ":" in text:
        text = _KEY_VALUE.sub(_mask_key_value, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub("[REDACTED_JWT]", text)
    if len(text) >= 13:
        text = _CARD.sub(_mask_card, text)
    return text


_PLAIN_TYPES: Final = frozenset({int, float, bool, type(None)})
# orjson renders these natively and their text can't carry a secret.
_NATIVE_TYPES: Final = (datetime, date, dtime, UUID, Decimal)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def redact(value: Any) -> Any:
    """Return a copy of `value` ready to log: secrets masked at any depth.

    Mapping entries whose key is a secret name (see `is_secret_name`) get `"[REDACTED]"`;
    strings go through `redact_text`; mappings, lists, tuples and sets are walked (into
    dicts with string keys and lists); objects JSON can't hold are rendered with `str()`
    and then redacted as text.
    """
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _PLAIN_TYPES or isinstance(value, _NATIVE_TYPES):
        return value
    if isinstance(value, Mapping):
        redacted = {}
        for key, item in value.items():
            name = key if type(key) is str else _safe_str(key)  # JSON keys are strings
            redacted[name] = REDACTED if is_secret_name(name) else redact(item)
        return redacted
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item) for item in value]
    return redact_text(_safe_str(value))


# --------------------------------------------------------------------------- rendering

# Schema keys a call's own fields may not overwrite; a clash is written as `field_<key>`.
_RESERVED: Final = frozenset(
    {
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
        "exception",
    }
)
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_second_prefix: tuple[int, str] = (-1, "")


def _utc_timestamp() -> str:
    global _second_prefix
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_prefix
    if second != cached_second:
        # The date part changes once a second; formatting it is the slow bit.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_prefix = (second, prefix)
    return prefix + _MILLIS[int((now - second) * 1000)]


def _add_fields(out: dict[str, Any], fields: Mapping[str, Any]) -> None:
    # The hot path is flat str/int/float fields, each checked with one dict lookup.
    secret_names = _secret_name_cache
    for key, value in fields.items():
        if key in _RESERVED:
            key = f"field_{key}"
        secret = secret_names.get(key)
        if secret is None:
            secret = is_secret_name(key)
        if secret:
            out[key] = REDACTED
        elif type(value) is str:
            out[key] = redact_text(value)
        elif type(value) in _PLAIN_TYPES:
            out[key] = value
        else:
            out[key] = redact(value)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exception_field(exc_info: ExcInfo) -> dict[str, str]:
    type_, value, tb = exc_info
    stack = "".join(traceback.format_exception(type_, value, tb)).rstrip("\n")
    return {
        "type": type_.__name__,
        "message": redact_text(_safe_str(value)),
        "stack": redact_text(stack),
    }


def _degrade(value: Any) -> Any:
    """What orjson refused (non-str keys, huge ints, a failing __str__) as plain JSON."""
    if isinstance(value, dict):
        return {_safe_str(k): _degrade(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_degrade(v) for v in value]
    if isinstance(value, (str, bool, float, *_NATIVE_TYPES)) or value is None:
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    return _safe_str(value)


def _render_json(out: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(out, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError
        return orjson.dumps(_degrade(out), option=orjson.OPT_APPEND_NEWLINE)


_COLORS: Final = {
    "TRACE": "\x1b[2m",
    "DEBUG": "\x1b[34m",
    "INFO": "\x1b[32m",
    "SUCCESS": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_CONSOLE_SKIP: Final = _RESERVED | {"user_id"}


def _console_value(value: Any) -> str:
    if isinstance(value, str) and value and " " not in value and '"' not in value:
        return value
    return orjson.dumps(value, default=str).decode()


def _render_console(out: dict[str, Any], color: bool) -> bytes:
    dim, cyan, reset = ("\x1b[2m", "\x1b[36m", "\x1b[0m") if color else ("", "", "")
    level = out["level"]
    level_color = _COLORS.get(level, "") if color else ""
    line = (
        f"{dim}{out['timestamp'][11:23]}{reset} {level_color}{level:<5}{reset} "
        f"{cyan}{out['logger']}{reset}  {out['message']}"
    )
    pairs = [f"{k}={_console_value(v)}" for k, v in out.items() if k not in _CONSOLE_SKIP]
    if out.get("user_id") is not None:
        pairs.append(f"user_id={out['user_id']}")
    if out["correlation_id"]:
        pairs.append(f"cid={str(out['correlation_id'])[:8]}")
    if pairs:
        line = f"{line}  {dim}{' '.join(pairs)}{reset}"
    if "exception" in out:
        # A traceback is the one thing worth more than one line in a developer's terminal.
        line = f"{line}\n{out['exception']['stack']}"
    return f"{line}\n".encode()


_module_names: dict[str, str] = {}


def _module_name(filename: str) -> str:
    """`module` as stdlib logging spells it: the file name without its extension."""
    name = _module_names.get(filename)
    if name is None:
        name = _module_names[filename] = os.path.splitext(os.path.basename(filename))[0]
    return name


# Keys this module puts in loguru's `extra`; anything else there came from code calling
# loguru directly (`logger.bind(...)`) and is rendered like a field.
_LOGGER_KEY: Final = "_ip_logger"
_ORIGIN_KEY: Final = "_ip_origin"


class _Sink:
    """The one place records are rendered and written, one line each."""

    def __init__(
        self,
        stream: TextIO,
        service: str,
        environment: str,
        version: str,
        fmt: Literal["json", "console"],
    ) -> None:
        self._stream = stream  # closing a text stream closes its buffer: keep it alive
        self._service = service
        self._environment = environment
        self._version = version
        self._color = fmt == "console" and bool(getattr(stream, "isatty", lambda: False)())
        self._json = fmt == "json"
        # A reentrant lock, so a signal handler that logs between write and flush can't
        # deadlock; rendering happens outside it.
        self._lock = threading.RLock()
        buffer: IO[bytes] | None = getattr(stream, "buffer", None)
        encoding = str(getattr(stream, "encoding", "") or "").lower().replace("-", "")
        self._bytes = buffer is not None and encoding == "utf8"
        if buffer is not None and self._bytes:
            stream.flush()  # whatever was printed before must come out first
            self._write: Callable[[Any], object] = buffer.write
            self._flush = buffer.flush
        else:
            self._write = stream.write
            self._flush = stream.flush

    def emit(
        self,
        level: str,
        logger: str,
        message: str,
        module: str,
        function: str,
        line: int,
        fields: Mapping[str, Any] | None,
        exc_info: ExcInfo | None,
    ) -> None:
        """Render and write one record; never raises, whatever the fields or the stream do."""
        try:
            data = self._render(level, logger, message, module, function, line, fields, exc_info)
        except Exception as error:  # e.g. a self-referencing field: keep the line, say why
            problem = {"log_error": f"{type(error).__name__}: {_safe_str(error)}"}
            data = self._render(level, logger, message, module, function, line, problem, None)
        self._write_line(data)

    def access(
        self,
        logger: str,
        module: str,
        function: str,
        line: int,
        method: str,
        path: str,
        route: str | None,
        status: int,
        duration_ms: float,
        response_bytes: int,
        client: str | None,
    ) -> None:
        """The access line, rendered without the generic field walk (one per request).

        Only the path comes from the request's content, so it is the one value redacted
        (and the message is built from it). The method is one the HTTP parser accepted,
        the route a template from code, the client the socket's peer address.
        """
        try:
            safe_path = redact_text(path)
            if not method.isalpha():
                method = redact_text(method)
            out = self._head(
                "INFO",
                logger,
                f"{method} {safe_path} {status} {duration_ms:.2f}ms",
                module,
                function,
                line,
            )
            out["event_type"] = "access"
            out["method"] = method
            out["path"] = safe_path
            out["route"] = route
            out["status"] = status
            out["duration_ms"] = round(duration_ms, 3)
            out["response_bytes"] = response_bytes
            out["client"] = client
            data = _render_json(out) if self._json else _render_console(out, self._color)
        except Exception as error:  # never fail a request over its access line
            problem = {"log_error": f"{type(error).__name__}: {_safe_str(error)}"}
            data = self._render("INFO", logger, "access", module, function, line, problem, None)
        self._write_line(data)

    def _write_line(self, data: bytes) -> None:
        with self._lock:
            try:
                self._write(data if self._bytes else data.decode())
                self._flush()
            except Exception as error:  # a closed pipe or a full disk must not fail a request
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"intellipost.shared.logging: write failed: {error!r}\n")

    def _head(
        self, level: str, logger: str, message: str, module: str, function: str, line: int
    ) -> dict[str, Any]:
        """The schema's fields, in order; ``message`` must already be redacted."""
        # This runs in the logging call's thread and context, so the contextvars and the
        # current span are the caller's, and the clock is the record's time.
        span = get_current_span()
        if span is INVALID_SPAN:
            trace_id = span_id = None
        else:
            context = span.get_span_context()
            trace_id = f"{context.trace_id:032x}" if context.is_valid else None
            span_id = f"{context.span_id:016x}" if context.is_valid else None
        out: dict[str, Any] = {
            "timestamp": _utc_timestamp(),
            "level": level,
            "logger": logger,
            "message": message,
            "service": self._service,
            "environment": self._environment,
            "version": self._version,
            "correlation_id": correlation_id_var.get(),
            "request_id": request_id_var.get(),
            "trace_id": trace_id,
            "span_id": span_id,
            "module": module,
            "function": function,
            "line": line,
        }
        user_id = user_id_var.get()
        if user_id is not None:
            out["user_id"] = user_id
        return out

    def _render(
        self,
        level: str,
        logger: str,
        message: str,
        module: str,
        function: str,
        line: int,
        fields: Mapping[str, Any] | None,
        exc_info: ExcInfo | None,
    ) -> bytes:
        out = self._head(
            level,
            logger,
            redact_text(message if type(message) is str else _safe_str(message)),
            module,
            function,
            line,
        )
        if fields:
            _add_fields(out, fields)
        if exc_info is not None:
            out["exception"] = _exception_field(exc_info)
        return _render_json(out) if self._json else _render_console(out, self._color)

    def write_loguru(self, message: Message) -> None:
        """The loguru sink: stdlib records (through _InterceptHandler) and direct loguru calls."""
        record = message.record
        extra = record["extra"]
        origin = extra.get(_ORIGIN_KEY)
        if origin is None:
            module, function, line = record["module"], record["function"], record["line"]
        else:
            module, function, line = origin
        exception = record["exception"]
        exc_info = None
        if exception is not None and exception.type is not None and exception.value is not None:
            exc_info = (exception.type, exception.value, exception.traceback)
        self.emit(
            record["level"].name,
            extra.get(_LOGGER_KEY) or record["name"] or "",
            record["message"],
            module,
            function,
            line,
            {k: v for k, v in extra.items() if k != _LOGGER_KEY and k != _ORIGIN_KEY},
            exc_info,
        )


# --------------------------------------------------------------------------- stdlib bridge

_LOGRECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured duplicate of the message
}
_LOGURU_LEVELS: Final = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
# Libraries that install handlers of their own, which would print every line a second time.
_ROUTED_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.asgi",
    "fastapi",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "alembic",
    "httpx",
    "httpcore",
    "aiohttp",
    "aiohttp.access",
    "asyncio",
    "opentelemetry",
)


class _InterceptHandler(logging.Handler):
    """Hands stdlib records to loguru, keeping their logger name and call site."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname if record.levelname in _LOGURU_LEVELS else record.levelno
            exc_info = record.exc_info
            extra = {k: v for k, v in vars(record).items() if k not in _LOGRECORD_ATTRS}
            extra[_LOGGER_KEY] = record.name
            extra[_ORIGIN_KEY] = (record.module, record.funcName, record.lineno)
            _loguru.opt(exception=exc_info if exc_info and exc_info[0] else None).bind(**extra).log(
                level, record.getMessage()
            )
        except Exception:
            self.handleError(record)


def _route_stdlib_logging(level_no: int) -> None:
    root = logging.getLogger()
    root.handlers = [_InterceptHandler()]
    root.setLevel(level_no)
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    # httpx logs every request at INFO; the services already log what they call and why,
    # so its per-request lines would only double the volume. Its warnings still come through.
    if level_no < logging.WARNING:
        for chatty in ("httpx", "httpcore"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    # The project writes its own access line (StructuredLogger.access).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


# --------------------------------------------------------------------------- public API

# Read on every call: records below _min_level return before doing any work.
_min_level = 0
_sink: _Sink | None = None


def configure_logging(
    *,
    service: str,
    environment: str,
    version: str,
    level: str = "INFO",
    fmt: Literal["json", "console"] = "json",
    sink: TextIO | None = None,
) -> None:
    """(Re)configure loguru and stdlib logging to write one record per line to `sink`.

    Idempotent: previous loguru handlers are removed, so calling it again never
    duplicates lines. uvicorn (run it with `log_config=None`), SQLAlchemy, httpx and the
    rest of stdlib logging go through loguru into the same sink; uvicorn's access log is
    disabled because `StructuredLogger.access` writes the project's own.
    """
    global _min_level, _sink
    level_no = _loguru.level(level.upper()).no
    new_sink = _Sink(sink if sink is not None else sys.stdout, service, environment, version, fmt)
    _loguru.remove()
    _loguru.add(
        new_sink.write_loguru,
        level=level_no,
        format="{message}",
        colorize=False,
        backtrace=False,
        diagnose=False,  # never render local variables: they hold the secrets
        enqueue=False,  # the sink must run in the caller's context to read its contextvars
        catch=True,
    )
    _sink, _min_level = new_sink, level_no
    _route_stdlib_logging(level_no)


_SECURITY_LEVELS: Final = {
    "low": ("INFO", 20),
    "medium": ("WARNING", 30),
    "high": ("ERROR", 40),
    "critical": ("ERROR", 40),
}


def _exc_info(value: object) -> ExcInfo | None:
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple):
        return cast(ExcInfo, value) if len(value) == 3 and value[0] is not None else None
    if value:
        type_, error, tb = sys.exc_info()
        return (type_, error, tb) if type_ is not None and error is not None else None
    return None


class StructuredLogger:
    """A named logger whose keyword arguments become top-level JSON fields."""

    __slots__ = ("_fields", "name")

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        self.name = name
        self._fields = fields or {}

    def __repr__(self) -> str:
        return f"StructuredLogger({self.name!r})"

    def _emit(
        self,
        level: str,
        level_no: int,
        msg: str,
        fields: dict[str, Any],
        depth: int = 0,
        exc_info: ExcInfo | None = None,
    ) -> None:
        """Write a record attributed to the caller `depth` frames above the public method."""
        if level_no < _min_level:
            return
        if self._fields:
            fields = {**self._fields, **fields}
        if "exc_info" in fields:  # fields is always a fresh dict here, so pop is safe
            exc_info = _exc_info(fields.pop("exc_info"))
        sink = _sink
        if sink is None:
            # Not configured yet (a script, an import-time message): loguru's default
            # handler prints it; depth=2 skips this method and the public one.
            _loguru.opt(depth=2 + depth, exception=exc_info).bind(**fields).log(level, msg)
            return
        # Rendering here rather than through loguru's per-record dispatch makes a line
        # about three times cheaper; it matters on the gateway, which logs every request.
        frame = sys._getframe(2 + depth)
        code = frame.f_code
        sink.emit(
            level,
            self.name,
            msg,
            _module_name(code.co_filename),
            code.co_name,
            frame.f_lineno,
            fields,
            exc_info,
        )

    def debug(self, msg: str, **fields: Any) -> None:
        self._emit("DEBUG", 10, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._emit("INFO", 20, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._emit("WARNING", 30, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._emit("ERROR", 40, msg, fields)

    def critical(self, msg: str, **fields: Any) -> None:
        self._emit("CRITICAL", 50, msg, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        """Log at ERROR with the exception being handled (call it from an `except`)."""
        self._emit("ERROR", 40, msg, fields, exc_info=_exc_info(True))

    def bind(self, **fields: Any) -> StructuredLogger:
        """A logger that adds `fields` to every line it writes."""
        return StructuredLogger(self.name, {**self._fields, **fields})

    def performance(self, operation: str, duration_ms: float, **fields: Any) -> None:
        self._emit(
            "INFO",
            20,
            f"{operation} took {duration_ms:.2f}ms",
            {
                "event_type": "performance",
                "operation": operation,
                "duration_ms": round(duration_ms, 3),
                **fields,
            },
        )

    def security_event(
        self,
        name: str,
        severity: Literal["low", "medium", "high", "critical"],
        **fields: Any,
    ) -> None:
        """A security-relevant event (failed login, rejected token...), routed by event_type."""
        level, level_no = _SECURITY_LEVELS.get(severity, ("WARNING", 30))
        self._emit(
            level,
            level_no,
            f"security event: {name}",
            {"event_type": "security", "security_event": name, "severity": severity, **fields},
        )

    def audit(self, action: str, resource: str, **fields: Any) -> None:
        self._emit(
            "INFO",
            20,
            f"audit: {action} {resource}",
            {"event_type": "audit", "action": action, "resource": resource, **fields},
        )

    def access(
        self,
        *,
        method: str,
        path: str,
        route: str | None,
        status: int,
        duration_ms: float,
        response_bytes: int,
        client: str | None,
        **fields: Any,
    ) -> None:
        """The one line per HTTP request (it replaces uvicorn's access log)."""
        if _min_level > 20:
            return
        sink = _sink
        if sink is not None and not fields and not self._fields:
            frame = sys._getframe(1)
            code = frame.f_code
            sink.access(
                self.name,
                _module_name(code.co_filename),
                code.co_name,
                frame.f_lineno,
                method,
                path,
                route,
                status,
                duration_ms,
                response_bytes,
                client,
            )
            return
        entry = {
            "event_type": "access",
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "response_bytes": response_bytes,
            "client": client,
        }
        if fields:
            entry.update(fields)
        self._emit("INFO", 20, f"{method} {path} {status} {duration_ms:.2f}ms", entry)

    def timed(self, operation: str, **fields: Any) -> _Timer:
        """Time a block (`with log.timed("db.query"):`) or every call of a function.

        Works as a decorator on sync and async functions. Emits a performance record
        with `duration_ms` and `success`; when an exception escapes, `success` is False,
        `error_type` names it, and it is re-raised.
        """
        return _Timer(self, operation, fields)


class _Timer:
    __slots__ = ("_fields", "_log", "_operation", "_start")

    def __init__(self, log: StructuredLogger, operation: str, fields: dict[str, Any]) -> None:
        self._log = log
        self._operation = operation
        self._fields = fields
        self._start = 0.0

    def _done(self, start: float, error: BaseException | None) -> None:
        duration_ms = (time.perf_counter() - start) * 1000
        fields: dict[str, Any] = {
            "event_type": "performance",
            "operation": self._operation,
            "duration_ms": round(duration_ms, 3),
            "success": error is None,
            **self._fields,
        }
        if error is not None:
            fields["error_type"] = type(error).__name__
        # depth=1: attribute the record to whoever called __exit__ or the wrapper.
        self._log._emit("INFO", 20, f"{self._operation} took {duration_ms:.2f}ms", fields, depth=1)

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done(self._start, exc)

    def __call__[**P, R](self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_timed(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as error:
                    self._done(start, error)
                    raise
                self._done(start, None)
                return result

            return cast(Callable[P, R], async_timed)

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                self._done(start, error)
                raise
            self._done(start, None)
            return result

        return timed


@functools.cache
def get_structured_logger(module: str) -> StructuredLogger:
    """The logger for `module`, named `intellipost.<module>` (one instance per module)."""
    name = module if module.startswith("intellipost.") else f"intellipost.{module}"
    return StructuredLogger(name)
