"""Several provinces in one deployment (issue 19, part 2): what the scenario loads, what
migration 0021 makes of a database loaded before it, and accounts scoped to provinces."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from ioc.cli import app
from ioc.scenario import load_into
from seeds.national import UnknownProvince, province_codes
from store import migrate
from store.db import connect, detect_flavor
from store.migrate import upgrade
from store.scope import NATIONAL, Scope
from store.users import list_users, login

THREE = "Bắc Giang, Thái Nguyên, Bình Định"


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        yield conn


def test_a_deployment_names_its_provinces_by_name_or_code_once_each() -> None:
    assert province_codes("Bắc Giang, 19, tinh_binh_dinh, Bac Giang") == [24, 19, 52]
    assert province_codes(52) == [52]
    with pytest.raises(UnknownProvince, match="no province named"):
        province_codes(" , ")
    with pytest.raises(UnknownProvince, match="did you mean Tỉnh Bắc Giang"):
        province_codes("Bình Định, Bac Gang")


def test_three_provinces_load_into_one_database_each_row_reaching_its_province(db) -> None:
    counts = load_into(db, THREE)
    assert counts["provinces"] == 3
    rows = db.execute("SELECT code, synthetic FROM provinces ORDER BY code").fetchall()
    assert rows == [(19, True), (24, True), (52, False)]
    # Every device's district lies in the province its id names (Bình Định's ids name none).
    by_province = dict(
        db.execute(
            "SELECT d.province_code, count(*) FROM devices v"
            " JOIN districts d ON d.code = v.district_code GROUP BY 1"
        ).fetchall()
    )
    assert by_province.keys() == {19, 24, 52}
    strays = db.execute(
        "SELECT v.device_id, d.province_code FROM devices v"
        " JOIN districts d ON d.code = v.district_code WHERE v.kind = 'bts' AND"
        " CASE WHEN d.province_code = 52 THEN v.device_id ~ '^BTS-[A-Z]+-[0-9]+$'"
        " ELSE v.device_id LIKE '%%-' || d.province_code || '-%%' END IS NOT TRUE"
    ).fetchall()
    assert strays == []
    assert db.execute("SELECT count(*) FROM devices WHERE district_code IS NULL").fetchone() == (0,)
    outlines = db.execute(
        "SELECT province_code FROM map_features WHERE kind = 'outline' ORDER BY 1"
    ).fetchall()
    assert outlines == [(19,), (24,), (52,)]
    assert db.execute(
        "SELECT count(*) FROM villages v JOIN districts d ON d.code = v.district_code"
        " WHERE d.province_code = 52 AND v.seed_dead_spot"
    ).fetchone() == (5,)
    # Loading again, one province: the places are replaced, not added to.
    load_into(db, "Bình Định")
    assert db.execute("SELECT array_agg(code) FROM provinces").fetchone() == ([52],)


def test_migration_0021_gives_a_binh_dinh_database_its_province(database_url, monkeypatch) -> None:
    """A database loaded before several provinces existed holds Bình Định alone."""
    every = migrate.plan
    monkeypatch.setattr(
        migrate, "plan", lambda flavor: [m for m in every(flavor) if m.version < 21]
    )
    with connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        conn.execute(
            "INSERT INTO districts (code, name, town, lat, lon, mountainous, polygon)"
            " VALUES (550, 'Huyện Vân Canh', 'Vân Canh', 13.6, 108.99, true, '[]')"
        )
        monkeypatch.setattr(migrate, "plan", every)
        assert [m.version for m in upgrade(conn)] == [m.version for m in every(
            detect_flavor(conn)) if m.version >= 21]  # fmt: skip
        assert conn.execute("SELECT province_code FROM districts").fetchall() == [(52,)]
        assert conn.execute("SELECT code, synthetic FROM provinces").fetchall() == [(52, False)]


def test_accounts_are_scoped_from_the_command_line(db, database_url, monkeypatch) -> None:
    monkeypatch.setenv("IOC_DATABASE_URL", database_url)
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["users", "add", "bg-duty", "--role", "operator", "--province", "Bắc Giang",
         "--password-stdin"],
        input="bac-giang-1\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Bắc Giang" in added.output
    national = runner.invoke(app, ["users", "add", "ministry", "--password-stdin"], input="m" * 9)
    assert national.exit_code == 0 and "every province" in national.output
    wrong = runner.invoke(
        app, ["users", "add", "x1", "--province", "Bac Gang", "--password-stdin"], input="x" * 9
    )
    assert wrong.exit_code == 2 and "did you mean Tỉnh Bắc Giang" in wrong.output
    assert {u.username: u.scope for u in list_users(db, scope=NATIONAL)} == {
        "bg-duty": Scope(frozenset({24})),
        "ministry": NATIONAL,
    }
    # An admin of Bắc Giang lists Bắc Giang's accounts, not the national ones.
    assert [u.username for u in list_users(db, scope=Scope.of([24]))] == ["bg-duty"]
    assert list_users(db, scope=Scope.of([19])) == []
    session = login(db, "bg-duty", "bac-giang-1")
    assert session is not None and session.user.scope == Scope(frozenset({24}))
    listed = runner.invoke(app, ["users", "list"]).output
    assert "Bắc Giang" in listed and "every province" in listed


def test_an_empty_list_of_provinces_is_no_scope_at_all() -> None:
    with pytest.raises(ValueError, match="at least one province"):
        Scope.of([])
    assert Scope.of(None) is NATIONAL and NATIONAL.allows(1) and not Scope.of([24]).allows(52)
