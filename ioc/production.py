"""Production mode (``IOC_MODE=production``): no service starts on an unset or example secret.

The rule is deliberately blunt, because the failure it prevents is quiet: a stack that runs
on the password from ``.env.example`` works perfectly until someone else logs in with it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from devices.topics import SHARED_GROUP

# Values that are examples, defaults of the images, or guesses an attacker tries first.
EXAMPLE_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "example", "password", "passw0rd", "secret",
     "postgres", "admin", "root", "ioc", "mosquitto", "test", "default", "123456"}
)  # fmt: skip
MIN_SECRET_CHARS = 12


def secret_problem(value: str | None) -> str | None:
    """Why ``value`` is no secret, or None when it will do."""
    if not value:
        return "is not set"
    if value.strip().lower() in EXAMPLE_SECRETS or "change-me" in value.lower():
        return f"is an example value ({value!r})"
    if len(value) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    return None


def url_password_problem(setting: str, url: str | None) -> str | None:
    if not url:
        return f"{setting} is not set"
    try:
        password = urlsplit(url).password
    except ValueError:
        return f"{setting} is not a URL"
    problem = secret_problem(unquote(password) if password else None)
    return f"{setting}: its password {problem}" if problem else None


def production_problem(database_url: str | None, mqtt_url: str | None) -> str | None:
    """The first reason the settings are not fit for production, as one line."""
    # Every service needs the database; the MQTT URL is checked where a service has one.
    for problem in (
        url_password_problem("IOC_DATABASE_URL", database_url),
        url_password_problem("IOC_MQTT_URL", mqtt_url) if mqtt_url else None,
    ):
        if problem:
            return f"{problem}; IOC_MODE=production refuses to start without real secrets"
    if mqtt_url and urlsplit(mqtt_url).scheme not in ("mqtts", "ssl"):
        return "IOC_MQTT_URL is not mqtts://; IOC_MODE=production sends passwords over TLS only"
    return None


def share_group_problem(group: str) -> str | None:
    """Mosquitto 2.0's ACL file does not check subscriptions: a device that knows the
    ingesters' shared-subscription group can join it and take a share of the readings (which
    its ACL then refuses to deliver: lost). In production the group name is a secret."""
    problem = "is the public default" if group == SHARED_GROUP else secret_problem(group)
    if problem:
        return (
            f"IOC_INGEST_SHARE_GROUP {problem}; in production it is a secret (a device "
            "that knows it can join the ingesters' group)"
        )
    return None
