"""Where token keys come from: fixed keys, or a JWKS endpoint's, chosen by kid and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Protocol

import jwt

from handlers.auth import ASYMMETRIC, TokenKeys, unverified_header
from streams import __version__
from streams.errors import OutageError
from streams.settings import ConfigError, Settings

log = logging.getLogger("tally.jwks")
_FETCH_TIMEOUT_S = 10.0  # a batch waits for the fetch; an endpoint that hangs is an outage


class KeySource(Protocol):
    """Where the token keys of a batch come from: fixed keys, or a JWKS endpoint's."""

    async def keys_for(self, tokens: Sequence[str]) -> TokenKeys:
        """Keys that verify `tokens` (as far as they can be found); raises OutageError when
        the keys cannot be fetched."""
        ...


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """TALLY_JWT_SECRET / TALLY_JWT_PUBLIC_KEY: the same keys for every batch."""

    keys: TokenKeys

    async def keys_for(self, tokens: Sequence[str]) -> TokenKeys:
        return self.keys


class JwksUnavailableError(OutageError):
    """The JWKS endpoint did not give the keys a batch needs: the batch pauses (contract §8.5)."""


class JwksKeys:
    """The secret/public key of `base`, and the JWKS keys by kid.

    The document is fetched when a token names a kid that is not cached, at most once per
    `refresh` seconds after a successful fetch; within that interval an unknown kid stays
    unknown (the token is unauthenticated). A failed fetch does not count: the batch's
    retries try again, and while they fail the batch pauses. A batch whose kids are all cached
    never waits for the endpoint."""

    def __init__(
        self,
        url: str,
        base: TokenKeys,
        refresh: float,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = _FETCH_TIMEOUT_S,
    ) -> None:
        headers = {"User-Agent": f"tally/{__version__}"}
        try:
            self._client = jwt.PyJWKClient(
                url, cache_jwk_set=False, headers=headers, timeout=timeout
            )
        except jwt.PyJWKClientError as error:
            raise ConfigError(f"invalid configuration: TALLY_JWT_JWKS_URL: {error}") from None
        self._keys = base
        self._refresh = refresh
        self._clock = clock
        self._fetched_at: float | None = None  # of the last successful fetch
        self._lock = asyncio.Lock()  # one fetch at a time

    async def keys_for(self, tokens: Sequence[str]) -> TokenKeys:
        kids = token_kids(tokens)
        if self._unknown(kids):
            async with self._lock:  # a fetch that finished meanwhile may have found them
                if self._unknown(kids) and self._may_fetch():
                    await self._fetch()
        return self._keys

    def _unknown(self, kids: Iterable[str]) -> bool:
        return any(kid not in self._keys.jwks for kid in kids)

    def _may_fetch(self) -> bool:
        last = self._fetched_at
        return last is None or self._clock() - last >= self._refresh

    async def _fetch(self) -> None:
        # Only a kid that is not cached makes Tally fetch, so a failure leaves a token of the
        # batch without its key: an outage, never a verdict on the token.
        try:
            # PyJWKClient fetches with blocking urllib: in a thread, never on the event loop.
            published = await asyncio.to_thread(self._client.get_signing_keys, True)
        except (jwt.PyJWTError, ValueError, OSError) as error:  # ValueError: not JSON
            problem = f"JWKS endpoint unavailable: {type(error).__name__}: {error}"
            raise JwksUnavailableError(problem[:200]) from None
        self._keys = replace(self._keys, jwks=by_kid(published))
        self._fetched_at = self._clock()
        log.info("jwks fetched", extra={"kids": sorted(self._keys.jwks)})


def token_kids(tokens: Iterable[str]) -> set[str]:
    """The kids that RS256/ES256 tokens name. Malformed tokens name none: they are refused
    later, and HS256 tokens never use a JWKS key, so neither makes Tally fetch."""
    kids: set[str] = set()
    for token in set(tokens):  # the commands of one producer usually share a token
        header = unverified_header(token) if isinstance(token, str) else None
        if header is not None and header.get("alg") in ASYMMETRIC:
            kid = header.get("kid")
            if isinstance(kid, str):
                kids.add(kid)
    return kids


def by_kid(published: Iterable[jwt.PyJWK]) -> Mapping[str, jwt.PyJWK]:
    """The published signing keys by kid; the first of keys sharing a kid (as PyJWKClient)."""
    keys: dict[str, jwt.PyJWK] = {}
    for key in published:
        if key.key_id is not None:
            keys.setdefault(key.key_id, key)
    return MappingProxyType(keys)


def key_source(settings: Settings) -> KeySource:
    """Fixed keys (secret, public key), plus a JWKS endpoint's when TALLY_JWT_JWKS_URL is set."""
    base = TokenKeys(
        # An empty variable is an unset one, never an empty key.
        secret=settings.jwt_secret or None,
        public_key=settings.jwt_public_key or None,
        issuer=settings.jwt_issuer or None,
        audience=settings.jwt_audience or None,
    )
    if not settings.jwt_jwks_url:
        return StaticKeys(base)
    return JwksKeys(settings.jwt_jwks_url, base, settings.jwt_jwks_refresh)
