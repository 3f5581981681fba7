"""Production's secrets and settings: example and weak values refused, TLS required, a secret
shared-subscription group. (The database roles are tests/test_db_roles.py.)"""

from __future__ import annotations

import pytest

from ioc.production import EXAMPLE_SECRETS, production_problem, secret_problem


@pytest.mark.parametrize("value", [*sorted(EXAMPLE_SECRETS), "", "short", "my-change-me-1234"])
def test_example_and_weak_secrets_are_refused(value: str) -> None:
    assert secret_problem(value) is not None


def test_production_settings_need_real_secrets_and_tls() -> None:
    good_db = "postgresql://ioc:Xk3v9-wq7Lm2pR@db/ioc"
    good_mqtt = "mqtts://ioc-ingest:Zz81-kqpW3n7vHs@mosquitto:8883?ca_file=/certs/ca.crt"
    assert production_problem(good_db, good_mqtt) is None
    assert production_problem(good_db, None) is None  # the dashboard has no broker
    assert "IOC_DATABASE_URL is not set" in str(production_problem(None, good_mqtt))
    assert "example value" in str(production_problem("postgresql://ioc:change-me@db/ioc", None))
    assert "not set" in str(production_problem("postgresql://ioc@db/ioc", None))
    assert "IOC_MQTT_URL" in str(production_problem(good_db, "mqtts://ioc-ingest@mq:8883"))
    plain = good_mqtt.replace("mqtts://", "mqtt://")
    assert "TLS" in str(production_problem(good_db, plain))


def test_production_ingesters_on_the_shared_group_need_a_secret_group_name() -> None:
    from ioc.configs import ingest_config
    from ioc.errors import SettingError
    from ioc.settings import Settings

    urls = {"database_url": "postgresql://ioc:Xk3v9-wq7Lm2pR@db/ioc",
            "mqtt": {"url": "mqtts://ioc-ingest-1:Zz81-kqpW3n7vHs@mosquitto:8883"}}  # fmt: skip
    public = Settings.defaults(mode="production", **urls)
    with pytest.raises(SettingError, match="IOC_INGEST_SHARE_GROUP is the public default"):
        ingest_config(public, shared=True)
    assert ingest_config(public, shared=False).share_group == public.ingest.share_group
    secret = Settings.defaults(mode="production", ingest={"share_group": "g-Hq83nWv0pLz6-2kT"},
                               **urls)  # fmt: skip
    assert ingest_config(secret, shared=True).share_group == "g-Hq83nWv0pLz6-2kT"
    with pytest.raises(ValueError, match=r"ingest\.share_group"):
        Settings.defaults(ingest={"share_group": "a/b"})
    # Production refuses self-registration: one credential must not invent devices.
    with pytest.raises(ValueError, match="IOC_INGEST_SELF_REGISTER"):
        Settings.defaults(mode="production", ingest={"self_register": True}, **urls)
    assert not public.self_register and Settings.defaults().self_register
