"""Session handles: the only session IDs the model ever receives.

A handle seals Infinity's session and engagement IDs, the workflow ID and
the caller's principal with Fernet (AES-128-CBC plus HMAC-SHA256, from `cryptography`).
It is stateless, so any replica that holds the key can open it, and it
carries its own issue time, so it expires without a server-side store.
Avaya asks callers not to expose its session, engagement or interaction IDs,
and sealing them satisfies that without a lookup table.

Opening fails the same way for a tampered, expired, foreign or garbled
handle, so a caller learns nothing from the failure.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import ConfigurationError, SessionNotFoundError

logger = logging.getLogger(__name__)

HANDLE_PREFIX = "wfs_"
_FORMAT_VERSION = 1
KEY_FORMAT_HINT = (
    "each comma-separated key must be 32 url-safe base64-encoded bytes; generate one with "
    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
)


@dataclass(frozen=True)
class SessionRef:
    """Sealed content of a handle: the upstream session, its workflow and its owner."""

    upstream_id: str
    workflow_id: str
    principal: str
    engagement_id: str | None = None


class HandleCodec:
    """Seal and open session handles with one or more Fernet keys.

    The first key seals. Every key opens, so an operator can rotate by putting
    a new key first and dropping the old one after the handle TTL has passed.
    """

    def __init__(self, keys: list[str], ttl_seconds: int) -> None:
        if not keys:
            raise ConfigurationError(["handle_keys is empty: set at least one Fernet key."])
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError:
            raise ConfigurationError([f"AVAYA_WORKFLOWS_HANDLE_KEYS is invalid: {KEY_FORMAT_HINT}."]) from None
        self._ttl = ttl_seconds

    @classmethod
    def from_setting(cls, keys: str | None, ttl_seconds: int) -> HandleCodec:
        """Build a codec from the comma-separated key setting, or with a fresh per-process key when unset."""
        if keys:
            return cls([key.strip() for key in keys.split(",") if key.strip()], ttl_seconds)
        logger.info(
            "handles.ephemeral_key: no handle key is configured, so session handles stop working "
            "when this process exits; set AVAYA_WORKFLOWS_HANDLE_KEYS to keep them valid across "
            "restarts and replicas"
        )
        return cls([Fernet.generate_key().decode()], ttl_seconds)

    def seal(self, ref: SessionRef, *, now: float | None = None) -> str:
        """Return a handle for `ref`; it opens only for the same principal until the TTL passes."""
        payload = json.dumps(
            {
                "v": _FORMAT_VERSION,
                "s": ref.upstream_id,
                "w": ref.workflow_id,
                "p": ref.principal,
                "e": ref.engagement_id,
            },
            separators=(",", ":"),
        ).encode()
        issued_at = int(time.time() if now is None else now)
        token = self._fernet.encrypt_at_time(payload, issued_at)
        # Fernet tokens are url-safe base64 already; dropping the padding keeps the handle to [A-Za-z0-9_-].
        return HANDLE_PREFIX + token.decode().rstrip("=")

    def open(self, handle: str, principal: str, *, now: float | None = None) -> SessionRef:
        """Return the sealed reference, or raise `SessionNotFoundError` for any invalid handle."""
        if not handle.startswith(HANDLE_PREFIX):
            raise SessionNotFoundError()
        body = handle[len(HANDLE_PREFIX) :]
        token = (body + "=" * (-len(body) % 4)).encode()
        # Base64 ignores the spare low bits of the last character, so several spellings decode alike.
        # Accept only the canonical one, so that every changed character is a different, invalid handle.
        try:
            canonical = base64.urlsafe_b64encode(base64.urlsafe_b64decode(token)).rstrip(b"=")
        except ValueError:
            raise SessionNotFoundError() from None
        if canonical != body.encode():
            raise SessionNotFoundError()
        current = int(time.time() if now is None else now)
        try:
            payload = json.loads(self._fernet.decrypt_at_time(token, self._ttl, current))
            ref = SessionRef(
                upstream_id=payload["s"],
                workflow_id=payload["w"],
                principal=payload["p"],
                engagement_id=payload.get("e"),
            )
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise SessionNotFoundError() from None
        if payload.get("v") != _FORMAT_VERSION or not hmac.compare_digest(ref.principal.encode(), principal.encode()):
            raise SessionNotFoundError()
        return ref
