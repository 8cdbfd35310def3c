"""Who is asking: the bearer token, verified by the same pure code as a command's `authtoken`."""

from __future__ import annotations

import base64
import binascii
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from handlers.auth import Principal, verify_token
from handlers.decision import Rejection
from handlers.permissions import may_operate
from streams.api.problems import ProblemError
from streams.errors import OutageError
from streams.jwks import KeySource

# auto_error=False: a missing header is our 401 problem, not FastAPI's 403.
_SCHEME = "A JWT as for a command's authtoken"
_bearer = HTTPBearer(auto_error=False, description=_SCHEME)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthenticated(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers=CHALLENGE)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise unauthenticated("an Authorization: Bearer <JWT> header is required")
    return credentials.credentials


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return _token(credentials)


class Verified:
    """Principals of tokens verified lately, until their `exp` (at most CACHE_S): a client sends
    the same token with every request, and checking its signature and claims each time was a
    tenth of a read's CPU. A token stays accepted no longer than it would be anyway (its `exp`);
    only a key withdrawn meanwhile is noticed up to CACHE_S late."""

    CACHE_S = 60.0
    SIZE = 10_000

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, token: str, now: float) -> Principal | None:
        hit = self._seen.get(token)
        if hit is None or hit[1] <= now:
            return None
        return hit[0]

    def put(self, token: str, principal: Principal, now: float) -> None:
        expires = _claimed_exp(token)
        if expires is None:
            return
        self._seen[token] = (principal, min(expires, now + self.CACHE_S))
        if len(self._seen) > self.SIZE:
            self._seen.popitem(last=False)


def _claimed_exp(token: str) -> float | None:
    """The `exp` of a token whose signature was just verified (so its payload is its own)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    except (IndexError, ValueError, AttributeError, binascii.Error, orjson.JSONDecodeError):
        return None


_VERIFIED = Verified()


async def principal_of(token: str, keys: KeySource) -> Principal:
    """The token's principal, judged now; 401 for any token the workers would refuse."""
    now = time.time()
    known = _VERIFIED.get(token, now)
    if known is not None:
        return known
    try:
        verification_keys = await keys.keys_for([token])
    except OutageError as exc:  # a JWKS endpoint down: an outage, never a verdict (contract §8.5)
        raise ProblemError(503, str(exc), headers={"Retry-After": "5"}) from None
    verdict = verify_token(token, verification_keys, datetime.fromtimestamp(now, UTC))
    if isinstance(verdict, Rejection):
        raise unauthenticated(verdict.detail)
    _VERIFIED.put(token, verdict, now)
    return verdict


class BearerPrincipal(HTTPBearer):
    """The principal of the request's bearer token in one dependency: as an `HTTPBearer` it
    gives the OpenAPI document its security scheme, and a read resolves one dependency, not a
    chain of three (solving them was a sixth of a read's CPU in a py-spy profile)."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        keys: KeySource = request.app.state.keys
        return await principal_of(_token(await super().__call__(request)), keys)


_principal = BearerPrincipal(auto_error=False, scheme_name="HTTPBearer", description=_SCHEME)
Actor = Annotated[Principal, Depends(_principal)]
Token = Annotated[str, Depends(bearer_token)]


async def current_operator(principal: Actor) -> Principal:
    """The principal of a console call: `ops` only (contract §15); any other role is 403."""
    if not may_operate(principal):
        raise ProblemError(403, "the operator console and /v1/ops need the ops role")
    return principal


Operator = Annotated[Principal, Depends(current_operator)]
