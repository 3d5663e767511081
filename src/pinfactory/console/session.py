"""Who is looking at the console: a key, once, then a signed session cookie.

The login form takes an API key and checks it with the gateway's
:class:`~pinfactory.gateway.auth.Keyring`; the browser then holds a cookie
signed with itsdangerous (HMAC-SHA1 over a timestamped payload) that carries
the key's SHA-256 digest and the session's CSRF token, never the key. Every
request checks the signature, the age (``ttl_s``) and the key again, so a
key revoked in the team file ends its sessions at the next restart.

Roles follow the key: ``admin`` sees everything, ``reviewer`` the review
queue and the requests it concerns, a unit key its own unit's requests,
spend and reviews (another unit's request is answered 404, as in the API).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Literal, Protocol

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from pinfactory.errors import AuthError
from pinfactory.team import hash_key

Role = Literal["admin", "reviewer", "unit"]
Page = Literal["live", "spend", "routing", "members", "reviews", "audit", "lab"]
SESSION_COOKIE = "pf_console"
LOGIN_COOKIE = "pf_console_login"
OPEN_DIGEST = "open"  # the session of a team with no keys (loopback use)

PAGES: dict[Role, tuple[Page, ...]] = {
    "admin": ("live", "spend", "routing", "members", "reviews", "audit", "lab"),
    "reviewer": ("reviews",),
    "unit": ("live", "spend", "reviews"),
}


class KeyHolder(Protocol):
    """Who holds a key (the gateway's ``Caller``)."""

    @property
    def unit(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def admin(self) -> bool: ...

    @property
    def reviewer(self) -> bool: ...


class Keys(Protocol):
    """The team's keys (the gateway's ``Keyring``), looked up by SHA-256 digest."""

    @property
    def open(self) -> bool: ...

    @property
    def units(self) -> list[str]: ...

    def holder(self, digest: str) -> KeyHolder:
        """The key's holder; AuthError if the key is revoked or unknown."""


@dataclass(frozen=True, slots=True)
class OpenKey:
    """The holder of every session of a team with no keys: the admin of ``default``."""

    unit: str = "default"
    user: str = ""
    admin: bool = True
    reviewer: bool = False


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How the console signs and scopes its sessions, and where the lab's reports are.

    ``secret`` signs cookies (random per process unless set: sessions then end
    when the gateway restarts, and every worker of one gateway needs the same
    one); ``ttl_s`` is a session's lifetime in seconds; ``lab_reports`` is the
    folder whose sub-folders hold ``pinfactory lab run`` reports.
    """

    secret: str
    ttl_s: int = 8 * 3600
    lab_reports: str = "lab/reports"

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> ConsoleSettings:
        """From ``PINFACTORY_CONSOLE_SECRET``, ``_TTL_S`` and ``PINFACTORY_LAB_REPORTS``."""
        env = dict(os.environ) if environ is None else environ
        ttl = env.get("PINFACTORY_CONSOLE_TTL_S", "")
        return cls(
            secret=env.get("PINFACTORY_CONSOLE_SECRET") or secrets.token_urlsafe(32),
            ttl_s=int(ttl) if ttl.isdigit() else 8 * 3600,
            lab_reports=env.get("PINFACTORY_LAB_REPORTS", "lab/reports"),
        )


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person behind a session: their role, unit, name and CSRF token."""

    role: Role
    unit: str
    user: str
    digest: str
    csrf: str

    @property
    def unit_scope(self) -> str | None:
        """The one unit whose data this viewer may read; None for all units."""
        return self.unit if self.role == "unit" else None

    @property
    def name(self) -> str:
        """How decisions are signed: the key's user, else its role and unit."""
        return self.user or (self.role if self.role != "unit" else f"unit {self.unit}")

    @property
    def decides(self) -> bool:
        return self.role in ("admin", "reviewer")

    def may(self, page: Page) -> bool:
        return page in PAGES[self.role]

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, token or "")


class SessionError(AuthError):
    """No usable session: missing, expired, tampered, or its key is no longer valid."""


def role_of(caller: KeyHolder) -> Role:
    if caller.admin:
        return "admin"
    return "reviewer" if caller.reviewer else "unit"


class Sessions:
    """Issues and reads signed session cookies against one keyring."""

    def __init__(self, keyring: Keys, settings: ConsoleSettings) -> None:
        self.keyring = keyring
        self.settings = settings
        self._cookies = URLSafeTimedSerializer(settings.secret, salt="pinfactory.console.session")
        self._login = URLSafeTimedSerializer(settings.secret, salt="pinfactory.console.login")

    def login(self, key: str) -> tuple[Viewer, str]:
        """Check a key typed into the login form; the viewer and the cookie value to set.

        Raises AuthError ("invalid API key", "API key revoked...") for a bad key.
        """
        caller: KeyHolder
        if self.keyring.open:
            digest, caller = OPEN_DIGEST, OpenKey()
        else:
            if not key.strip():
                raise AuthError("enter an API key of this team")
            digest = hash_key(key.strip())
            caller = self.keyring.holder(digest)
        viewer = self._viewer(caller, digest, secrets.token_urlsafe(24))
        return viewer, self._cookies.dumps({"k": digest, "c": viewer.csrf})

    def read(self, cookie: str | None) -> Viewer:
        """The viewer of a session cookie; SessionError says why there is none."""
        if not cookie:
            raise SessionError("log in with an API key of this team")
        try:
            data = self._cookies.loads(cookie, max_age=self.settings.ttl_s)
        except SignatureExpired:
            raise SessionError("your session has expired: log in again") from None
        except BadSignature:
            raise SessionError("your session cookie is not valid: log in again") from None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str):
            raise SessionError("your session cookie is not valid: log in again")
        digest, csrf = str(data["k"]), str(data.get("c", ""))
        if digest == OPEN_DIGEST:
            if not self.keyring.open:
                raise SessionError("this team now has keys: log in with one")
            return self._viewer(OpenKey(), digest, csrf)
        try:
            caller = self.keyring.holder(digest)
        except AuthError as exc:
            raise SessionError(f"{exc.message}: log in again") from None
        return self._viewer(caller, digest, csrf)

    def login_token(self) -> tuple[str, str]:
        """A CSRF token for the login form and the signed cookie that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self._login.dumps(token)

    def login_token_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        try:
            expected = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, token)

    @staticmethod
    def _viewer(caller: KeyHolder, digest: str, csrf: str) -> Viewer:
        return Viewer(role_of(caller), caller.unit, caller.user, digest, csrf)
