"""A hostile Binance upstream on 127.0.0.1: the real simulator, with chosen bad answers mixed in.

Why: issue 15's red-team found the collector crash-looping, sticking and swelling on answers a
real server (or anything in between) can send. This fixture makes each of those answers on
demand, over real HTTP and WebSocket, so tests and the soak bench feed the collector exactly
what production would meet. Valid answers come from the real `Simulator` (its exchange served
in-process on our own uvicorn, so the client's address, the signatures and the weight limits
are the simulator's own); a bad answer replaces one REST answer, or is pushed as extra frames
on live user-data subscriptions.

    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        up.inject(RestFault.DEEP, path="/api/v3/rateLimit/order")   # the next matching call
        up.rest_mix = {RestFault.JUNK_GZIP: 0.1, RestFault.DROP: 0.05}  # or at random
        ... point the collector at up.rest_url / up.ws_url ...
        await up.subscribed()
        await up.send_frames(WsFault.VALID, n=20_000, per_s=20_000)  # a flood of real facts
        await up.send_frames(WsFault.MALFORMED, n=10)
        assert every id in up.sent_valid_ids("main") is stored once

Counters: `rest_sent[fault]` (REST answers by fault, VALID included), `ws_sent[fault]` (frames
by fault), `sent_orders` (the (symbol, orderId) of every valid fact pushed; `sent_valid_ids`
turns them into the event ids the collector stores). Nothing here holds a large body in
memory: the 512 MiB answer is one reused 1 MiB chunk written until the client hangs up.
"""

from __future__ import annotations

from monitor.world.hostile.faults import MALFORMED_FRAMES, Injection, RestFault, WsFault
from monitor.world.hostile.upstream import HostileUpstream

__all__ = ["MALFORMED_FRAMES", "HostileUpstream", "Injection", "RestFault", "WsFault"]
