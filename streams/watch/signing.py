"""The watch's identity: tokens as `sub=tally-watch` with role `risk`, which may only freeze."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt

from handlers.auth import Principal, TokenKeys, verify_token
from streams import keymaterial
from streams.settings import ConfigError, Settings

SUBJECT = "tally-watch"
ROLES = ("risk",)
TOKEN_TTL_S = 300  # judged at the moment the broker appends the freeze (contract §6)


class Signer:
    """Signs with TALLY_WATCH_JWT_PRIVATE_KEY (RS256/ES256, `kid` = TALLY_WATCH_JWT_KEY_ID)
    when set, for workers that verify with a public key or JWKS; else with TALLY_JWT_SECRET."""

    def __init__(self, settings: Settings) -> None:
        private_key = settings.watch_jwt_private_key
        self._key = private_key or settings.jwt_secret or ""
        self._algorithm = keymaterial.signing_algorithm(private_key) if private_key else "HS256"
        self._kid = settings.watch_jwt_key_id if private_key else None
        self._claims: dict[str, Any] = {"sub": SUBJECT, "roles": list(ROLES)}
        if settings.jwt_issuer:
            self._claims["iss"] = settings.jwt_issuer
        if settings.jwt_audience:
            self._claims["aud"] = settings.jwt_audience

    def token(self, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = self._claims | {"iat": issued, "exp": issued + TOKEN_TTL_S}
        headers = {"kid": self._kid} if self._kid else None
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)


def check_accepted(signer: Signer, settings: Settings) -> None:
    """Fail start-up when the workers' fixed keys would refuse the watch's tokens; keys only a
    JWKS endpoint publishes are the identity provider's to match."""
    if not (settings.jwt_secret or settings.jwt_public_key):
        return
    keys = TokenKeys(
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    now = datetime.now(UTC)
    verdict = verify_token(signer.token(now), keys, now)
    if isinstance(verdict, Principal) or settings.jwt_jwks_url:
        return
    variable = (
        "TALLY_WATCH_JWT_PRIVATE_KEY" if settings.watch_jwt_private_key else "TALLY_JWT_SECRET"
    )
    raise ConfigError(
        f"invalid configuration: {variable}: the workers would refuse the watch's freeze "
        f"commands ({verdict.detail})"
    )
