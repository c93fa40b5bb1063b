"""`keywatch demo`: the simulator, the real service and real Apprise alerts, on loopback."""
