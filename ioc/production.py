"""Production mode (``IOC_MODE=production``): no service starts on an unset or example secret.

The rule is deliberately blunt, because the failure it prevents is quiet: a stack that runs
on an example password works perfectly until someone else logs in with it.
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


# Dashboard users' passwords (production): long enough, and not guessable by the dictionaries
# attackers try first. zxcvbn (Dropbox's estimator, Python port dwolfhub/zxcvbn-python) scores a
# password 0-4 against its frequency lists: the most common passwords of leaked sets, English
# words, names, keyboard patterns, dates and l33t substitutions. Score 3 is "safely
# unguessable: moderate protection from an offline slow-hash attack".
MIN_USER_PASSWORD_CHARS = 12
MIN_USER_PASSWORD_SCORE = 3
PROJECT_WORDS = ("ioc", "telemetry", "dashboard", "binh dinh", "binhdinh", "quy nhon")


def user_password_problem(username: str, password: str) -> str | None:
    """Why a dashboard user's ``password`` is too weak for production, or None."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # no stubs published

    if len(password) < MIN_USER_PASSWORD_CHARS:
        return f"at least {MIN_USER_PASSWORD_CHARS} characters in production"
    if password.strip().lower() in EXAMPLE_SECRETS:
        return "a well-known default password"
    judged = zxcvbn(password[:100], user_inputs=[username, *PROJECT_WORDS])
    if judged["score"] < MIN_USER_PASSWORD_SCORE:
        why = judged["feedback"]["warning"] or "it follows a pattern guessed early"
        return f"too easy to guess ({why.rstrip('.')}); use a passphrase of a few random words"
    return None


def apply_password_policy(mode: str) -> None:
    """Every way a dashboard user is made (``ioc users add``, the dashboard's users page)
    passes through store.users.add_user; in production it also runs the rule above. The store
    may not import the shell, so the shell hands the rule down."""
    from store import users

    users.password_policy = user_password_problem if mode == "production" else None
