"""The caller's principal, which session handles are bound to.

Over HTTP with OAuth, the principal is the access token's issuer and subject,
so a handle minted for one user does not open for another. Over stdio, or
over HTTP without auth, the server serves the user who launched it, so every
call gets that local principal.
"""

from __future__ import annotations

import getpass
import json

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context


def local_principal() -> str:
    """Return the principal of the local user that runs this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = "unknown"
    return f"local:{user}"


def principal_of_token(token: AccessToken) -> str:
    """Return the principal a verified access token stands for: its issuer and its subject."""
    issuer = (token.claims or {}).get("iss")
    return "oauth:" + json.dumps([issuer, token.subject], separators=(",", ":"))


def current_principal() -> str:
    """Return the principal of the request being served: the bearer token's, else the local user's."""
    token = get_access_token()
    return local_principal() if token is None else principal_of_token(token)


def principal_of(ctx: Context) -> str:
    """Return the principal of the request in `ctx`."""
    del ctx  # the SDK keeps the verified token in a context variable for the whole request
    return current_principal()
