"""Sessions: a key once, then a signed cookie that expires, resists tampering, follows its key."""

from __future__ import annotations

import time

import pytest

from pinfactory.console.session import ConsoleSettings, SessionError, Sessions
from pinfactory.errors import AuthError
from pinfactory.gateway.auth import Keyring
from pinfactory.team import KeySpec

ADMIN, REVIEWER, SALES = "sk-admin-000001", "sk-review-000002", "sk-sales-000003"


def sessions(ttl_s: int = 3600, *, revoke_sales: bool = False) -> Sessions:
    keys = [
        KeySpec(key=ADMIN, unit="ops", user="carol", admin=True),
        KeySpec(key=REVIEWER, unit="ops", user="rita", reviewer=True),
        KeySpec(key=SALES, unit="sales", revoked=revoke_sales),
    ]
    return Sessions(Keyring(keys), ConsoleSettings(secret="s3cret", ttl_s=ttl_s))


def test_roles_follow_the_key_and_scope_what_it_sees() -> None:
    made = sessions()
    admin, _ = made.login(ADMIN)
    reviewer, _ = made.login(REVIEWER)
    unit, cookie = made.login(SALES)
    assert (admin.role, admin.unit_scope, admin.may("audit")) == ("admin", None, True)
    assert (reviewer.role, reviewer.may("reviews"), reviewer.may("live")) == (
        "reviewer",
        True,
        False,
    )
    assert (unit.role, unit.unit_scope, unit.may("spend"), unit.may("routing")) == (
        "unit",
        "sales",
        True,
        False,
    )
    assert not unit.decides and reviewer.decides and reviewer.name == "rita"
    assert made.read(cookie) == unit
    assert SALES not in cookie


def test_bad_keys_and_cookies_are_refused_with_the_reason() -> None:
    made = sessions()
    with pytest.raises(AuthError, match="invalid API key"):
        made.login("sk-wrong-wrong")
    with pytest.raises(AuthError, match="enter an API key"):
        made.login("  ")
    _, cookie = made.login(ADMIN)
    with pytest.raises(SessionError, match="not valid"):
        made.read(cookie[:-3] + ("abc" if not cookie.endswith("abc") else "xyz"))
    with pytest.raises(SessionError, match="not valid"):
        Sessions(made.keyring, ConsoleSettings(secret="other")).read(cookie)
    with pytest.raises(SessionError, match="log in"):
        made.read(None)
    _, sales = made.login(SALES)
    with pytest.raises(SessionError, match="revoked"):
        sessions(revoke_sales=True).read(sales)  # the key was revoked after login


def test_a_session_expires_after_its_ttl() -> None:
    made = sessions(ttl_s=1)
    _, cookie = made.login(ADMIN)
    time.sleep(2.1)  # itsdangerous ages in whole seconds
    with pytest.raises(SessionError, match="expired"):
        made.read(cookie)


def test_csrf_tokens_belong_to_their_session() -> None:
    made = sessions()
    one, _ = made.login(ADMIN)
    two, _ = made.login(ADMIN)
    assert one.csrf_ok(one.csrf) and not one.csrf_ok(two.csrf) and not one.csrf_ok(None)
    token, cookie = made.login_token()
    assert made.login_token_ok(cookie, token) and not made.login_token_ok(cookie, "forged")
