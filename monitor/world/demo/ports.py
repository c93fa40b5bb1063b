"""The ports `keywatch demo` listens on, one record from the command line to every server.

Everything the demo binds is on 127.0.0.1: the simulator (REST and WebSocket API on one port,
its public market-data streams on another, as Binance serves them), the tap the scenario's
bots call, the service's /healthz and /metrics, and the local webhook the alerts arrive at.
Each is 0 by default (the kernel picks a free port, so two demos never collide); a fixed port
is for a firewall rule, a Prometheus scrape or a client pointed at the simulator by hand.

A bad value is refused before anything starts, in one line naming the option: a port out of
range, the same port for two servers, or a port something else already holds (checked by
binding it for a moment; the real bind comes a few seconds later, so a port taken in between
still fails there, with the server's own error).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, fields

HOST = "127.0.0.1"


class PortError(ValueError):
    """One line: which option, what is wrong with it, what to do."""


@dataclass(frozen=True)
class DemoPorts:
    sim: int = 0  # the simulator's REST and WebSocket API (--sim-port)
    stream: int = 0  # the simulator's public market-data streams (--stream-port)
    tap: int = 0  # the tap the bots call through (--tap-port)
    health: int = 0  # the service's /healthz and /metrics (--health-port)
    receiver: int = 0  # the webhook Apprise delivers the alerts to (--receiver-port)

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for name, port in self.items():
            if not 0 <= port <= 65535:
                raise PortError(f"{option(name)} {port}: a port is 0-65535 (0 picks a free one)")
            if port and port in seen:
                raise PortError(f"{option(name)} {port}: {option(seen[port])} has it already; "
                                "give each server its own port (or 0)")
            seen[port] = name

    @classmethod
    def parse(cls, **texts: str) -> DemoPorts:
        """From the options' text (`tap="8765"`): PortError, naming the option, for a value
        that is not a whole number, so every bad port is the same one line."""
        ports = {}
        for name, text in texts.items():
            try:
                ports[name] = int(text.strip(), 10)
            except ValueError:
                raise PortError(f"{option(name)} {text!r}: not a port number (0-65535, 0 picks "
                                "a free one)") from None
        return cls(**ports)

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, int(getattr(self, f.name))) for f in fields(self)]

    def check_free(self) -> None:
        """Each fixed port must be free on HOST now: PortError naming the option if not."""
        for name, port in self.items():
            if port == 0:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
                try:
                    s.bind((HOST, port))
                except OSError as exc:
                    why = ("something else listens there" if exc.errno == errno.EADDRINUSE
                           else exc.strerror or str(exc))
                    raise PortError(f"{option(name)} {port}: cannot listen on {HOST}:{port} "
                                    f"({why}); choose another port, or 0 for a free one"
                                    ) from None


def option(name: str) -> str:
    """The command-line option of a DemoPorts field."""
    return f"--{name}-port"
