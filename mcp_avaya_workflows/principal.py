"""The caller's principal, which session handles are bound to.

Over stdio the server serves exactly one local user, the one who launched it,
so every call gets the same local principal and a handle minted for another
principal (another user's server sharing the key) does not open.
"""

from __future__ import annotations

import getpass

from mcp.server.mcpserver import Context


def local_principal() -> str:
    """Return the principal of the local user that runs this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = "unknown"
    return f"local:{user}"


def principal_of(ctx: Context) -> str:
    """Return the principal of the request in `ctx`.

    NOTE: every transport served today is local, so this is always the local principal.
    """
    del ctx
    return local_principal()
