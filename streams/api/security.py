"""Who is asking: the bearer token, verified by the same pure code as a command's `authtoken`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from handlers.auth import Principal, verify_token
from handlers.decision import Rejection
from handlers.permissions import may_operate
from streams.api.problems import ProblemError
from streams.errors import OutageError
from streams.jwks import KeySource

# auto_error=False: a missing header is our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A JWT as for a command's authtoken")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthenticated(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers=CHALLENGE)


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials:
        raise unauthenticated("an Authorization: Bearer <JWT> header is required")
    return credentials.credentials


async def principal_of(token: str, keys: KeySource) -> Principal:
    """The token's principal, judged now; 401 for any token the workers would refuse."""
    try:
        verification_keys = await keys.keys_for([token])
    except OutageError as exc:  # a JWKS endpoint down: an outage, never a verdict (contract §8.5)
        raise ProblemError(503, str(exc), headers={"Retry-After": "5"}) from None
    verdict = verify_token(token, verification_keys, datetime.now(UTC))
    if isinstance(verdict, Rejection):
        raise unauthenticated(verdict.detail)
    return verdict


async def current_principal(
    request: Request, token: Annotated[str, Depends(bearer_token)]
) -> Principal:
    keys: KeySource = request.app.state.keys
    return await principal_of(token, keys)


Actor = Annotated[Principal, Depends(current_principal)]
Token = Annotated[str, Depends(bearer_token)]


async def current_operator(principal: Actor) -> Principal:
    """The principal of a console call: `ops` only (contract §15); any other role is 403."""
    if not may_operate(principal):
        raise ProblemError(403, "the operator console and /v1/ops need the ops role")
    return principal


Operator = Annotated[Principal, Depends(current_operator)]
