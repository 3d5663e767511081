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


OPEN_CALLER = Caller(unit="default", admin=True)


class Keyring:
    """Looks keys up by their SHA-256 digest; the keys themselves are never kept.

    With no keys configured the gateway is open (meant for loopback use):
    every caller is the ``default`` unit.
    """

    def __init__(self, keys: list[KeySpec]) -> None:
        self._by_digest = {spec.digest: Caller(spec.unit, spec.user, spec.admin) for spec in keys}

    @property
    def open(self) -> bool:
        return not self._by_digest

    def identify(self, authorization: str | None) -> Caller:
        if self.open:
            return OPEN_CALLER
        if not authorization:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <key>'")
        caller = self._by_digest.get(hash_key(key.strip()))
        if caller is None:
            raise AuthError("invalid API key")
        return caller
