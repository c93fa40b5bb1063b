"""Binance error answers as one exception, so every rule can stop a request the same way.

Codes, messages and HTTP statuses follow binance-wire.md sections 1.3 and 5; the REST body is
exactly `{"code": ..., "msg": ...}` and the WebSocket API wraps the same pair under `error`.
"""

from __future__ import annotations


class ApiError(Exception):
    """A Binance-style rejection: HTTP status, Binance code, message, optional extra headers."""

    def __init__(
        self, status: int, code: int, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def bad_key_format() -> ApiError:
    return ApiError(401, -2014, "API-key format invalid.")


def rejected_key() -> ApiError:
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def bad_signature() -> ApiError:
    return ApiError(400, -1022, "Signature for this request is not valid.")


def stale_timestamp() -> ApiError:
    return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def ahead_timestamp() -> ApiError:
    return ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def missing_param(name: str) -> ApiError:
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def bad_value(name: str, detail: str = "") -> ApiError:
    tail = f" {detail}" if detail else ""
    return ApiError(400, -1102, f"'{name}' contains unexpected value.{tail}")


def filter_failure(name: str) -> ApiError:
    return ApiError(400, -1013, f"Filter failure: {name}")


def insufficient_balance() -> ApiError:
    return ApiError(400, -2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> ApiError:
    return ApiError(400, -2010, "Duplicate order sent.")


def unknown_order_cancel() -> ApiError:
    return ApiError(400, -2011, "Unknown order sent.")


def order_missing() -> ApiError:
    return ApiError(400, -2013, "Order does not exist.")


def invalid_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


def retired() -> ApiError:
    """Legacy listen-key endpoints (retired for Spot on 2026-02-20).

    Binance's exact answer is not documented (binance-wire.md section 8.7); SIMULATOR CHOICE:
    HTTP 410 Gone with the real code -1020 UNSUPPORTED_OPERATION.
    """
    return ApiError(410, -1020, "This operation is not supported.")
