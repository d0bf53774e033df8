"""Single-use request state, so that one confirmation starts a workflow at most once.

From protocol 2026-07-28, a call that needs the user's response returns the
question with a sealed `requestState`, and the client repeats the call with
the response and that state. The SDK checks the state's seal, expiry, request
and principal, but a valid state can be sent again until it expires. One
"yes" could then start a workflow several times, so this codec wraps the
SDK's AES-GCM codec and rejects a state it has already opened.

NOTE: the record of opened states is per process. A replica that did not
open a state would still accept it once, until the state expires.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState, RequestStateCodec

# Seconds a sealed state stays valid: time for a person to read and answer a confirmation question.
REQUEST_STATE_TTL_SECONDS = 300.0
# States opened within the TTL that the process remembers; beyond it the oldest are forgotten first.
MAX_REMEMBERED_STATES = 100_000


class SingleUseCodec:
    """A `RequestStateCodec` whose tokens open once; a second use raises `InvalidRequestState`."""

    def __init__(
        self,
        inner: RequestStateCodec,
        *,
        ttl_seconds: float = REQUEST_STATE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._opened: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def with_keys(cls, keys: Sequence[str] | None) -> SingleUseCodec:
        """Wrap the SDK's AES-GCM codec over `keys`, or over a key of this process's own when there are none."""
        ring: Sequence[str | bytes] = list(keys) if keys else [os.urandom(32)]
        return cls(AESGCMRequestStateCodec(ring))

    def seal(self, payload: bytes) -> str:
        return self._inner.seal(payload)

    def unseal(self, token: str) -> bytes:
        # The seal is checked first, so only tokens this service minted are remembered.
        payload = self._inner.unseal(token)
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        with self._lock:
            while self._opened and (
                next(iter(self._opened.values())) <= now or len(self._opened) >= MAX_REMEMBERED_STATES
            ):
                self._opened.popitem(last=False)
            if digest in self._opened:
                raise InvalidRequestState("replayed")
            self._opened[digest] = now + self._ttl
        return payload
