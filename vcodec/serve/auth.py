"""Bearer tokens: which scope a request has and what that scope may read.

Scopes (:data:`TOKEN_SCOPES`): ``base`` reads the base layer only, ``all``
reads every layer, ``publish`` may only publish.  With no tokens configured
every request is allowed (a trusted network).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from vcodec.errors import ConfigError
from vcodec.serve.http import HTTPRefusal

__all__ = ["TOKEN_SCOPES", "parse_tokens", "token_scope", "authorize_read"]

#: token scopes: what a bearer token of that scope may do
TOKEN_SCOPES = ("base", "all", "publish")


def parse_tokens(text: str) -> dict[str, str]:
    """``base=S1,all=S2,publish=S3`` -> {scope: token}."""
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        scope, sep, token = item.partition("=")
        scope = scope.strip().lower()
        if not sep or scope not in TOKEN_SCOPES or not token.strip():
            raise ConfigError(f"--token {item!r}: expected SCOPE=TOKEN with SCOPE one of "
                              f"{', '.join(TOKEN_SCOPES)}")
        if scope in out:
            raise ConfigError(f"--token: scope {scope!r} given twice")
        out[scope] = token.strip()
    return out


def token_scope(tokens: dict[str, str], request: web.Request) -> str | None:
    """The scope of the request's bearer token; None when tokens are off. Raises 401."""
    if not tokens:
        return None
    auth = request.headers.get("Authorization", "")
    kind, _, token = auth.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="vcodec"'}
    if kind.lower() != "bearer" or not token.strip():
        raise HTTPRefusal(401, "this server needs a bearer token (Authorization: Bearer TOKEN; "
                               "`vcodec analyze --token`)", challenge)
    for scope, secret in tokens.items():
        # constant time: the comparison must not tell how much of a guess was right
        if hmac.compare_digest(token.strip().encode(), secret.encode()):
            return scope
    raise HTTPRefusal(401, "bearer token not recognised",
                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def authorize_read(scope: str | None, keep: set[int] | None) -> None:
    """Refuse (403) a read of layers ``keep`` (None = all) that ``scope`` does not grant."""
    if scope is None or scope == "all":
        return
    if scope == "base":
        if keep is not None and keep <= {0}:
            return
        raise HTTPRefusal(403, "this token grants the base layer only: ask for ?layers=base")
    raise HTTPRefusal(403, f"a {scope!r} token cannot read streams")
