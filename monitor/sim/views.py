"""Response bodies with exactly the fields binance-wire.md section 3 lists, numbers as strings."""

from __future__ import annotations

import time as _time

from monitor.sim.market import fmt
from monitor.sim.state import Account, Order, Trade, Withdrawal


def order_view(order: Order) -> dict[str, object]:
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
        "clientOrderId": order.client_order_id, "price": fmt(order.price),
        "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote), "status": order.status,
        "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
        "stopPrice": fmt(0), "icebergQty": fmt(0), "time": order.time_ms,
        "updateTime": order.update_ms, "isWorking": True, "workingTime": order.time_ms,
        "origQuoteOrderQty": fmt(order.quote_order_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def new_order_view(order: Order, trades: list[Trade], resp_type: str,
                   transact_ms: int) -> dict[str, object]:
    """POST /api/v3/order answer by newOrderRespType (ACK / RESULT / FULL; wire 3.10)."""
    out: dict[str, object] = {"symbol": order.symbol, "orderId": order.order_id,
                              "orderListId": -1, "clientOrderId": order.client_order_id,
                              "transactTime": transact_ms}
    if resp_type == "ACK":
        return out
    out.update({
        "price": fmt(order.price), "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.quote_order_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote), "status": order.status,
        "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
        "workingTime": order.time_ms, "selfTradePreventionMode": "EXPIRE_MAKER",
    })
    if resp_type == "FULL":
        out["fills"] = [{"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.commission),
                         "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                        for t in trades]
    return out


def trade_view(trade: Trade) -> dict[str, object]:
    return {
        "symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id,
        "orderListId": -1, "price": fmt(trade.price), "qty": fmt(trade.qty),
        "quoteQty": fmt(trade.quote_qty), "commission": fmt(trade.commission),
        "commissionAsset": trade.commission_asset, "time": trade.time_ms,
        "isBuyer": trade.is_buyer, "isMaker": trade.is_maker, "isBestMatch": True,
    }


def account_view(account: Account, can_trade: bool, omit_zero: bool) -> dict[str, object]:
    balances = []
    for asset in account.assets():
        free, locked = account.balance(asset)
        if omit_zero and free == 0 and locked == 0:
            continue
        balances.append({"asset": asset, "free": fmt(free), "locked": fmt(locked)})
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": fmt("0.001"), "taker": fmt("0.001"), "buyer": fmt(0),
                            "seller": fmt(0)},
        "canTrade": can_trade, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False,
        "updateTime": account.update_ms, "accountType": "SPOT", "balances": balances,
        "permissions": ["SPOT"], "uid": account.uid,
    }


def _utc(ms: int) -> str:
    return _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(ms / 1000))


def withdrawal_view(wd: Withdrawal) -> dict[str, object]:
    return {
        "id": wd.id, "amount": fmt(wd.amount), "transactionFee": "0", "coin": wd.coin,
        "status": wd.status, "address": wd.address, "txId": "0x" + wd.id * 2,
        "applyTime": _utc(wd.apply_ms), "network": wd.network, "transferType": 0,
        "withdrawOrderId": wd.withdraw_order_id, "info": "", "confirmNo": 3, "walletType": 0,
        "txKey": "", "completeTime": _utc(wd.apply_ms + 60_000),
    }
