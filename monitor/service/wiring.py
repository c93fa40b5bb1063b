"""How the service's stages are built from the config: the detection engine, and the alert
manager and notifier wired to it (metrics, secrets, and the key context an alert shows beside
a new caller address). Kept apart from `service.py`, which runs them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from monitor.alert.manager import AlertManager
from monitor.alert.notify import Notifier
from monitor.alert.redact import config_secrets
from monitor.alert.wording import KeyContext, key_contexts
from monitor.config import Config
from monitor.core.clock import Clock
from monitor.detect.engine import DetectionEngine
from monitor.service.metrics import Metrics
from monitor.store import Store

log = logging.getLogger("keywatch.service")


def build_engine(cfg: Config) -> DetectionEngine:
    """Rules plus the configured model; a missing or mismatched model means rules only, loudly.

    A model card that does not match this code or this scikit-learn is refused by the loader
    (scoring garbage would be worse); the service keeps watching with its rules meanwhile.
    """
    from monitor.detect.forest import ModelMismatch

    try:
        return DetectionEngine.from_config(cfg, cfg.rules_dir, cfg.model_path, isolated=True)
    except ModelMismatch as exc:
        log.warning("IsolationForest disabled, running rules only: %s", exc)
        return DetectionEngine.from_config(cfg, cfg.rules_dir, None)


def key_context_of(cfg: Config, engine: object
                   ) -> Callable[[], dict[tuple[str, str], KeyContext]]:
    """Per (account, key): the declared whitelist and the addresses the engine has seen the key
    call from (its thread-safe snapshot, `DetectionEngine.seen_ips`), read at render time; an
    engine without one (a test's stand-in) gives the whitelist alone."""
    seen: Callable[[], Iterable[tuple[str, str, str]]] | None = getattr(engine, "seen_ips", None)
    return lambda: key_contexts(cfg.accounts, seen() if seen is not None else None)


def build_alerting(cfg: Config, store: Store, clock: Clock, metrics: Metrics, engine: object
                   ) -> tuple[AlertManager, Notifier]:
    """The alert manager and the notifier, sharing the config's secrets and the metrics."""
    secrets = config_secrets(cfg)
    manager = AlertManager(store, clock, cfg.alerts, secrets=secrets,
                           on_silenced=metrics.finding_silenced,
                           key_context=key_context_of(cfg, engine))
    notifier = Notifier(store, clock, cfg.alerts, secrets=secrets, on_attempt=metrics.delivery)
    return manager, notifier
