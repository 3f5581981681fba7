"""Command lines for Mosquitto's own C clients, the benches' reference subscriber and publisher:
one place for how they reach a loopback broker (MQTT 5, QoS 1) and keep a persistent session."""

from __future__ import annotations


def client(tool: str, port: int) -> list[str]:
    """``mosquitto_sub`` or ``mosquitto_pub`` on the loopback broker at ``port``, MQTT 5, QoS 1."""
    return [tool, "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1"]


def session(port: int, client_id: str, root: str, expiry_s: int = 3600) -> list[str]:
    """``mosquitto_sub`` on the persistent session ``client_id`` (kept ``expiry_s`` after it
    disconnects), subscribed to everything under ``root``."""
    return [*client("mosquitto_sub", port), "-c", "-i", client_id, "-x", str(expiry_s),
            "-t", f"{root}/#"]  # fmt: skip
