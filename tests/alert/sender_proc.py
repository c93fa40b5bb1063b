"""A real sender process for the kill test: send the outbox until it is empty, then exit 0.

Run as `python -m tests.alert.sender_proc CONFIG`; the test SIGKILLs it mid-send and restarts it.
"""

from __future__ import annotations

import asyncio
import sys
import time

from monitor.alert.notify import Backoff, Notifier
from monitor.alert.redact import config_secrets
from monitor.config import load_config
from monitor.core.clock import SystemClock
from monitor.store import open_store


async def main(path: str) -> int:
    cfg = load_config(path)
    store = open_store(cfg.store_path)
    clock = SystemClock()
    sender = Notifier(store, clock, cfg.alerts, secrets=config_secrets(cfg),
                      backoff=Backoff(base_s=0.1, cap_s=0.5), timeout_s=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await sender.send_due()
        if not any(d.state == "pending" for d in store.deliveries()):
            store.close()
            return 0
        await clock.sleep(0.05)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
