"""Session handles: sealed references that open only for their owner, until they expire."""

from __future__ import annotations

import base64
import logging

import pytest
from cryptography.fernet import Fernet

from mcp_avaya_workflows.errors import ConfigurationError, SessionNotFoundError
from mcp_avaya_workflows.handles import HANDLE_PREFIX, HandleCodec, SessionRef
from mcp_avaya_workflows.sanitizer import HANDLE_PATTERN, check_handle

TTL = 3600
ISSUED = 1_700_000_000
REF = SessionRef(
    upstream_id="028d01111220a063d64b039dad",
    workflow_id="025d010819f98dbc75776be9666",
    principal="oauth:alice@example.com",
)
# The 64 characters of url-safe base64, which is the alphabet of a handle body.
URLSAFE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NOT_FOUND_MESSAGE = str(SessionNotFoundError())


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def codec(key: str) -> HandleCodec:
    return HandleCodec([key], TTL)


@pytest.fixture
def handle(codec: HandleCodec) -> str:
    return codec.seal(REF, now=ISSUED)


def replace_char(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


def other_char(char: str) -> str:
    """Return a url-safe base64 character that differs from `char` in its top bits."""
    position = URLSAFE_ALPHABET.index(char)
    return URLSAFE_ALPHABET[(position + 32) % 64]


# Sealing and opening


def test_handle_round_trip(codec: HandleCodec, handle: str) -> None:
    assert codec.open(handle, REF.principal, now=ISSUED) == REF


def test_handle_round_trip_without_now(codec: HandleCodec) -> None:
    """Without `now`, both sides use the wall clock."""
    assert codec.open(codec.seal(REF), REF.principal) == REF


def test_handle_passes_sanitizer(handle: str) -> None:
    assert handle.startswith(HANDLE_PREFIX)
    assert HANDLE_PATTERN.fullmatch(handle)
    assert check_handle(handle) == handle


def test_handle_hides_sealed_ids(handle: str) -> None:
    body = handle.removeprefix(HANDLE_PREFIX)
    token = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))

    assert REF.upstream_id not in handle
    assert REF.workflow_id not in handle
    assert REF.principal not in handle
    assert REF.upstream_id.encode() not in token
    assert REF.workflow_id.encode() not in token
    assert REF.principal.encode() not in token


def test_handles_differ_for_same_session(codec: HandleCodec) -> None:
    """Each seal uses a fresh IV, so two handles for one session cannot be linked by comparing them."""
    first = codec.seal(REF, now=ISSUED)
    second = codec.seal(REF, now=ISSUED)

    assert first != second
    assert codec.open(first, REF.principal, now=ISSUED) == REF
    assert codec.open(second, REF.principal, now=ISSUED) == REF


def test_handle_keeps_unusual_ids(codec: HandleCodec) -> None:
    ref = SessionRef(
        upstream_id="s" * 64, workflow_id="wf_025d010627e3314fa905c5484c", principal="t\u00e9nant:b\u00f6b"
    )

    handle = codec.seal(ref, now=ISSUED)

    assert HANDLE_PATTERN.fullmatch(handle)
    assert codec.open(handle, ref.principal, now=ISSUED) == ref


def test_handle_valid_until_ttl_ends(codec: HandleCodec, handle: str) -> None:
    assert codec.open(handle, REF.principal, now=ISSUED + TTL) == REF


# Failures


def assert_not_found(codec: HandleCodec, handle: str, principal: str = REF.principal, now: int = ISSUED) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        codec.open(handle, principal, now=now)
    assert str(info.value) == NOT_FOUND_MESSAGE


def test_expired_handle_not_found(codec: HandleCodec, handle: str) -> None:
    assert_not_found(codec, handle, now=ISSUED + TTL + 1)


def test_foreign_principal_not_found(codec: HandleCodec, handle: str) -> None:
    assert_not_found(codec, handle, principal="oauth:mallory@example.com")


@pytest.mark.parametrize(
    "principal",
    [
        pytest.param("", id="empty"),
        pytest.param("oauth:alice@example.co", id="prefix"),
        pytest.param("oauth:alice@example.com ", id="trailing-space"),
        pytest.param("OAUTH:ALICE@EXAMPLE.COM", id="uppercase"),
    ],
)
def test_near_principal_not_found(codec: HandleCodec, handle: str, principal: str) -> None:
    assert_not_found(codec, handle, principal=principal)


def test_other_key_not_found(handle: str) -> None:
    stranger = HandleCodec([Fernet.generate_key().decode()], TTL)

    assert_not_found(stranger, handle)


@pytest.mark.parametrize("kept", [len(HANDLE_PREFIX), len(HANDLE_PREFIX) + 1, 20, -4, -1])
def test_truncated_handle_not_found(codec: HandleCodec, handle: str, kept: int) -> None:
    assert_not_found(codec, handle[:kept])


@pytest.mark.parametrize(
    "principal",
    [
        # Principals 16 characters apart add a cipher block each, so the three cases cover every
        # length modulo 3 of the token, and with it every amount of base64 padding that seal() strips.
        pytest.param("oauth:a", id="short-principal"),
        pytest.param("oauth:" + "a" * 17, id="one-block-longer"),
        pytest.param("oauth:" + "a" * 33, id="two-blocks-longer"),
    ],
)
def test_any_changed_character_not_found(codec: HandleCodec, principal: str) -> None:
    """Changing any one character of the body, to any other url-safe base64 character, breaks the handle."""
    handle = codec.seal(SessionRef(REF.upstream_id, REF.workflow_id, principal), now=ISSUED)
    opened = []
    for index in range(len(HANDLE_PREFIX), len(handle)):
        for char in URLSAFE_ALPHABET:
            if char == handle[index]:
                continue
            tampered = replace_char(handle, index, char)
            try:
                codec.open(tampered, principal, now=ISSUED)
            except SessionNotFoundError:
                continue
            opened.append(f"{index}:{handle[index]}->{char}")

    assert opened == []


@pytest.mark.parametrize("index", [len(HANDLE_PREFIX), 10, 40, 100, -40, -1])
def test_tampered_handle_not_found(codec: HandleCodec, handle: str, index: int) -> None:
    position = index % len(handle)

    assert_not_found(codec, replace_char(handle, position, other_char(handle[position])))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(HANDLE_PREFIX, id="prefix-only"),
        pytest.param("wfs_" + "A" * 200, id="same-length-garbage"),
        pytest.param("wfs_not-a-fernet-token", id="short-garbage"),
        pytest.param("wfs_!!!$$$", id="not-base64"),
        pytest.param("028d01111220a063d64b039dad", id="raw-upstream-id"),
    ],
)
def test_garbage_handle_not_found(codec: HandleCodec, value: str) -> None:
    assert_not_found(codec, value)


def test_missing_prefix_not_found(codec: HandleCodec, handle: str) -> None:
    assert_not_found(codec, handle.removeprefix(HANDLE_PREFIX))


def test_foreign_prefix_not_found(codec: HandleCodec, handle: str) -> None:
    assert_not_found(codec, "wfx_" + handle.removeprefix(HANDLE_PREFIX))


def test_plain_fernet_token_not_found(key: str, codec: HandleCodec) -> None:
    """A Fernet token sealed with the right key but not in handle format carries no session."""
    token = Fernet(key.encode()).encrypt_at_time(b'{"v":1}', ISSUED).decode()

    assert_not_found(codec, HANDLE_PREFIX + token.rstrip("="))


def test_wrong_format_version_not_found(key: str, codec: HandleCodec) -> None:
    payload = (
        b'{"v":2,"s":"028d01111220a063d64b039dad","w":"025d010819f98dbc75776be9666","p":"oauth:alice@example.com"}'
    )
    token = Fernet(key.encode()).encrypt_at_time(payload, ISSUED).decode()

    assert_not_found(codec, HANDLE_PREFIX + token.rstrip("="))


# Key rotation and configuration


def test_rotation_opens_old_handles(key: str, handle: str) -> None:
    new_key = Fernet.generate_key().decode()
    rotated = HandleCodec([new_key, key], TTL)

    assert rotated.open(handle, REF.principal, now=ISSUED) == REF


def test_rotation_seals_with_first_key(key: str) -> None:
    new_key = Fernet.generate_key().decode()
    rotated = HandleCodec([new_key, key], TTL)
    sealed = rotated.seal(REF, now=ISSUED)

    assert HandleCodec([new_key], TTL).open(sealed, REF.principal, now=ISSUED) == REF
    assert_not_found(HandleCodec([key], TTL), sealed)


def test_from_setting_none_uses_fresh_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_avaya_workflows.handles")

    first = HandleCodec.from_setting(None, TTL)
    second = HandleCodec.from_setting(None, TTL)
    handle = first.seal(REF, now=ISSUED)

    assert first.open(handle, REF.principal, now=ISSUED) == REF
    assert_not_found(second, handle)
    assert "handles.ephemeral_key" in caplog.text


def test_from_setting_empty_uses_fresh_key() -> None:
    codec = HandleCodec.from_setting("", TTL)

    assert codec.open(codec.seal(REF, now=ISSUED), REF.principal, now=ISSUED) == REF


def test_from_setting_splits_key_list(key: str, handle: str) -> None:
    new_key = Fernet.generate_key().decode()

    codec = HandleCodec.from_setting(f" {new_key} , ,{key} ", TTL)

    assert codec.open(handle, REF.principal, now=ISSUED) == REF


def test_from_setting_applies_ttl(key: str, handle: str) -> None:
    codec = HandleCodec.from_setting(key, 60)

    assert codec.open(handle, REF.principal, now=ISSUED + 60) == REF
    assert_not_found(codec, handle, now=ISSUED + 61)


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param("correct-horse-battery-staple-42", id="passphrase"),
        pytest.param(base64.urlsafe_b64encode(b"k" * 16).decode(), id="16-byte-key"),
        pytest.param(base64.urlsafe_b64encode(b"k" * 33).decode(), id="33-byte-key"),
        pytest.param(Fernet.generate_key().decode()[:-2], id="truncated-key"),
        pytest.param("s\u00e9cret-" * 6, id="non-ascii"),
    ],
)
def test_invalid_key_hidden_in_error(bad_key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        HandleCodec([bad_key], TTL)

    assert "AVAYA_WORKFLOWS_HANDLE_KEYS" in str(info.value)
    assert bad_key not in str(info.value)
    assert all(bad_key not in problem for problem in info.value.problems)


def test_invalid_key_in_list_hides_all_keys(key: str) -> None:
    bad_key = "correct-horse-battery-staple-42"

    with pytest.raises(ConfigurationError) as info:
        HandleCodec.from_setting(f"{key},{bad_key}", TTL)

    assert bad_key not in str(info.value)
    assert key not in str(info.value)


def test_empty_key_list_rejected() -> None:
    with pytest.raises(ConfigurationError) as info:
        HandleCodec([], TTL)

    assert "handle_keys" in str(info.value)
