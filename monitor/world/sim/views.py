"""Response bodies with exactly the fields binance-wire.md section 3 lists, numbers as strings."""

from __future__ import annotations

import time as _time

from monitor.world.sim.market import fmt
from monitor.world.sim.state import COMMISSION, Account, Order, OrderList, Trade, Withdrawal


def order_view(order: Order) -> dict[str, object]:
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id, "price": fmt(order.price),
        "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote), "status": order.status,
        "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
        "stopPrice": fmt(order.stop_price), "icebergQty": fmt(order.iceberg_qty),
        "time": order.time_ms, "updateTime": order.update_ms,
        "isWorking": order.working_ms != -1, "workingTime": order.working_ms,
        "origQuoteOrderQty": fmt(order.quote_order_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _result_fields(order: Order) -> dict[str, object]:
    """The RESULT body, with the conditional stopPrice / icebergQty of rest-api.md."""
    out: dict[str, object] = {
        "price": fmt(order.price), "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.quote_order_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote), "status": order.status,
        "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
    }
    if order.stop_price:
        out["stopPrice"] = fmt(order.stop_price)
    if order.iceberg_qty:
        out["icebergQty"] = fmt(order.iceberg_qty)
    return out


def new_order_view(order: Order, trades: list[Trade], resp_type: str,
                   transact_ms: int) -> dict[str, object]:
    """POST /api/v3/order answer by newOrderRespType (ACK / RESULT / FULL; wire 3.10)."""
    out: dict[str, object] = {"symbol": order.symbol, "orderId": order.order_id,
                              "orderListId": order.order_list_id,
                              "clientOrderId": order.client_order_id,
                              "transactTime": transact_ms}
    if resp_type == "ACK":
        return out
    out.update(_result_fields(order))
    out["workingTime"] = order.working_ms
    out["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if resp_type == "FULL":
        out["fills"] = [{"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.commission),
                         "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                        for t in trades]
    return out


def cancel_view(order: Order, cancel_client_id: str) -> dict[str, object]:
    """A cancelled order as DELETE /api/v3/order, openOrders and orderList report it."""
    return {"symbol": order.symbol, "origClientOrderId": order.client_order_id,
            "orderId": order.order_id, "orderListId": order.order_list_id,
            "clientOrderId": cancel_client_id, "transactTime": order.update_ms,
            **_result_fields(order), "selfTradePreventionMode": "EXPIRE_MAKER"}


def order_list_view(lst: OrderList, orders: dict[int, Order],
                    reports: list[dict[str, object]] | None = None) -> dict[str, object]:
    """The order-list object; `orderReports` only in answers that change the list."""
    out: dict[str, object] = {
        "orderListId": lst.order_list_id, "contingencyType": lst.contingency_type,
        "listStatusType": lst.status_type, "listOrderStatus": lst.order_status,
        "listClientOrderId": lst.list_client_order_id, "transactionTime": lst.transaction_ms,
        "symbol": lst.symbol,
        "orders": [{"symbol": lst.symbol, "orderId": oid,
                    "clientOrderId": orders[oid].client_order_id} for oid in lst.order_ids],
    }
    if reports is not None:
        out["orderReports"] = reports
    return out


_NO_DISCOUNT = {"enabledForAccount": False, "enabledForSymbol": True, "discountAsset": "BNB",
                "discount": fmt("0.25")}


def commission_view(symbol: str) -> dict[str, object]:
    """GET /api/v3/account/commission. SIMULATOR CHOICE: no special or tax rates, and the BNB
    discount exists for the symbol but is off for the account (fees are taken in the asset
    received)."""
    rate = fmt(COMMISSION)
    return {"symbol": symbol,
            "standardCommission": {"maker": rate, "taker": rate, "buyer": fmt(0),
                                   "seller": fmt(0)},
            "specialCommission": {"maker": fmt(0), "taker": fmt(0), "buyer": fmt(0),
                                  "seller": fmt(0)},
            "taxCommission": {"maker": fmt(0), "taker": fmt(0), "buyer": fmt(0),
                              "seller": fmt(0)},
            "discount": dict(_NO_DISCOUNT)}


def order_commission_view() -> dict[str, object]:
    """POST /api/v3/order/test with computeCommissionRates=true."""
    rate = fmt(COMMISSION)
    return {"standardCommissionForOrder": {"maker": rate, "taker": rate},
            "specialCommissionForOrder": {"maker": fmt(0), "taker": fmt(0)},
            "taxCommissionForOrder": {"maker": fmt(0), "taker": fmt(0)},
            "discount": dict(_NO_DISCOUNT)}


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
        "commissionRates": {"maker": fmt(COMMISSION), "taker": fmt(COMMISSION), "buyer": fmt(0),
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
        "info": "", "confirmNo": 3, "walletType": 0, "txKey": "",
        "completeTime": _utc(wd.apply_ms + 60_000),
        # Binance returns withdrawOrderId only for withdrawals that were given one
        **({"withdrawOrderId": wd.withdraw_order_id} if wd.withdraw_order_id else {}),
    }
