"""API keys -> who is calling: business unit, user, admin or not."""

from __future__ import annotations

from dataclasses import dataclass

from pinfactory.errors import AuthError
from pinfactory.team import KeySpec, hash_key


@dataclass(frozen=True, slots=True)
class Caller:
    unit: str
    user: str = ""
    admin: bool = False
    reviewer: bool = False


OPEN_CALLER = Caller(unit="default", admin=True)


class Keyring:
    """Looks keys up by their SHA-256 digest; the keys themselves are never kept.

    With no keys configured the gateway is open (meant for loopback use):
    every caller is the ``default`` unit.
    """

    def __init__(self, keys: list[KeySpec]) -> None:
        live = [spec for spec in keys if not spec.revoked]
        self._by_digest = {
            spec.digest: Caller(spec.unit, spec.user, spec.admin, spec.reviewer) for spec in live
        }
        self._revoked = {spec.digest for spec in keys if spec.revoked}
        self.units = sorted({spec.unit for spec in keys})

    @property
    def open(self) -> bool:
        return not self._by_digest and not self._revoked

    def identify(self, authorization: str | None) -> Caller:
        if self.open:
            return OPEN_CALLER
        if not authorization:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <key>'")
        return self.holder(hash_key(key.strip()))

    def holder(self, digest: str) -> Caller:
        """Who holds the key with this SHA-256 digest; AuthError if revoked or unknown."""
        if digest in self._revoked:
            raise AuthError("API key revoked: ask an admin of this team for a new key")
        caller = self._by_digest.get(digest)
        if caller is None:
            raise AuthError("invalid API key")
        return caller
