"""Alerting: findings -> outbox alerts (manager) -> Apprise channels (notify)."""
