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


def invalid_symbol_status() -> ApiError:
    return ApiError(400, -1122, "Invalid symbolStatus.")


def bad_param_combo() -> ApiError:
    return ApiError(400, -1128, "Combination of optional parameters invalid.")


def duplicate_symbols() -> ApiError:
    return ApiError(400, -1151, "Symbol is present multiple times in the list.")


# -- market-data parameters (errors.md 11xx, as the market-data endpoints raise them) ------
def param_empty(name: str) -> ApiError:
    return ApiError(400, -1105, f"Parameter '{name}' was empty.")


def bad_interval() -> ApiError:
    return ApiError(400, -1120, "Invalid interval.")


def not_all_read(read: int, sent: int) -> ApiError:
    return ApiError(400, -1104, f"Not all sent parameters were read; read '{read}' parameter(s) "
                    f"but was sent '{sent}'.")


def too_many_values(expected: int, received: int) -> ApiError:
    return ApiError(400, -1101, f"Too many parameters; expected '{expected}' and received "
                    f"'{received}'.")


def invalid_ticker_type() -> ApiError:
    return ApiError(400, -1139, "Invalid ticker type.")


def symbol_status_mismatch() -> ApiError:
    return ApiError(400, -1220, "The symbol's status does not match the requested symbolStatus.")


def no_such_endpoint() -> ApiError:
    """An unknown path, or a known path with a method it does not serve.

    Real Binance answers these with an HTML 404 page (binance-wire-2.md 2.4 [obs]).
    SIMULATOR CHOICE: HTTP 404 with a JSON body, so every answer the simulator gives parses as
    Binance JSON; the code is -1020 UNSUPPORTED_OPERATION ("This operation is not supported."),
    the documented code whose meaning fits. -1000 UNKNOWN would claim a server fault, and ccxt
    maps it to OperationFailed (retryable) where -1020 maps to NotSupported.
    """
    return ApiError(404, -1020, "This operation is not supported.")


# -- order parameters and order rejects (errors.md: 11xx, the -2010/-2011 message table) ----
INT_RANGE = "^[0-9]{1,20}$"
DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"


class DataApiError(ApiError):
    """A rejection whose body carries a `data` object (cancel-replace -2021/-2022)."""

    def __init__(self, status: int, code: int, msg: str, data: dict[str, object]) -> None:
        super().__init__(status, code, msg)
        self.data = data

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg, "data": self.data}


def illegal_chars(name: str, legal: str) -> ApiError:
    return ApiError(400, -1100,
                    f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def missing_either(first: str, second: str) -> ApiError:
    return ApiError(400, -1102,
                    f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def invalid_tif() -> ApiError:
    return ApiError(400, -1115, "Invalid timeInForce.")


def invalid_order_type() -> ApiError:
    return ApiError(400, -1116, "Invalid orderType.")


def invalid_side() -> ApiError:
    return ApiError(400, -1117, "Invalid side.")


def invalid_param(name: str) -> ApiError:
    return ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


def invalid_cancel_restrictions() -> ApiError:
    return ApiError(400, -1145,
                    "cancelRestrictions has to be either ONLY_NEW or ONLY_PARTIALLY_FILLED.")


def oco_type_rejected() -> ApiError:
    return ApiError(400, -1158, "Order type not supported in OCO.")


OCO_LEG_RULES = {
    -1165: "A limit order in a buy OCO must be below.",
    -1166: "A limit order in a sell OCO must be above.",
    -1196: "A stop loss order in a buy OCO must be above.",
    -1197: "A stop loss order in a sell OCO must be below.",
    -1198: "A take profit order in a buy OCO must be below.",
    -1199: "A take profit order in a sell OCO must be above.",
}


def oco_leg_misplaced(code: int) -> ApiError:
    return ApiError(400, code, OCO_LEG_RULES[code])


def order_rejected(msg: str) -> ApiError:
    """-2010 NEW_ORDER_REJECTED with one message of the errors.md matching-engine table."""
    return ApiError(400, -2010, msg)


def cancel_rejected(msg: str) -> ApiError:
    return ApiError(400, -2011, msg)


UNSUPPORTED_TYPE_MSG = {
    "MARKET": "Market orders are not supported for this symbol.",
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}


def unsupported_order_type(order_type: str) -> ApiError:
    """errors.md names each disabled type; LIMIT and LIMIT_MAKER have no documented message.

    SIMULATOR CHOICE for those two: the generic "Unsupported order combination".
    """
    return order_rejected(UNSUPPORTED_TYPE_MSG.get(order_type, "Unsupported order combination"))


def cancel_replace_failed(data: dict[str, object]) -> ApiError:
    return DataApiError(400, -2022, "Order cancel-replace failed.", data)


def cancel_replace_partial(data: dict[str, object]) -> ApiError:
    return DataApiError(409, -2021, "Order cancel-replace partially failed.", data)


def lookup_too_long(hours: int) -> ApiError:
    return ApiError(400, -1127, f"More than {hours} hours between startTime and endTime.")


def unknown_order_list_cancel() -> ApiError:
    """Not in errors.md; the wording is what live Binance answers [obs]. SIMULATOR CHOICE."""
    return ApiError(400, -2011, "Unknown order list sent.")


def order_list_missing() -> ApiError:
    """Not in errors.md; the wording is what live Binance answers [obs]. SIMULATOR CHOICE."""
    return ApiError(400, -2013, "Order list does not exist.")


def retired() -> ApiError:
    """Legacy listen-key endpoints (retired for Spot on 2026-02-20).

    Binance's exact answer is not documented (binance-wire.md section 8.7); SIMULATOR CHOICE:
    HTTP 410 Gone with the real code -1020 UNSUPPORTED_OPERATION.
    """
    return ApiError(410, -1020, "This operation is not supported.")
