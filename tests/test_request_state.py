"""Single-use request state: a sealed state opens once within its lifetime."""

from __future__ import annotations

import pytest
from mcp.server.request_state import InvalidRequestState

from mcp_avaya_workflows.request_state import SingleUseCodec


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_codec(clock: Clock) -> SingleUseCodec:
    return SingleUseCodec(SingleUseCodec.with_keys(["k" * 32]), ttl_seconds=10, clock=clock)


def test_state_opens_once() -> None:
    codec = make_codec(Clock())
    token = codec.seal(b"state")
    assert codec.unseal(token) == b"state"
    with pytest.raises(InvalidRequestState, match="replayed"):
        codec.unseal(token)


def test_each_seal_opens_on_its_own() -> None:
    codec = make_codec(Clock())
    first, second = codec.seal(b"same"), codec.seal(b"same")
    assert first != second
    assert codec.unseal(first) == codec.unseal(second) == b"same"


def test_forged_tokens_are_rejected_and_not_remembered() -> None:
    codec = make_codec(Clock())
    for forged in ("v1.AAAA", "garbage", ""):
        with pytest.raises(InvalidRequestState):
            codec.unseal(forged)
    assert len(codec._opened) == 0


def test_opened_states_are_forgotten_after_the_lifetime() -> None:
    clock = Clock()
    codec = make_codec(clock)
    codec.unseal(codec.seal(b"a"))
    clock.now += 11
    codec.unseal(codec.seal(b"b"))
    assert len(codec._opened) == 1


def test_shared_keys_open_other_replicas_state() -> None:
    minted = make_codec(Clock()).seal(b"state")
    assert make_codec(Clock()).unseal(minted) == b"state"
