"""Settings from the environment: Avaya's names, the project's names, derivation and errors."""

from __future__ import annotations

import pytest

from mcp_avaya_workflows.errors import ConfigurationError
from mcp_avaya_workflows.settings import load_settings

PROJECT_VARIABLES = [
    "AVAYA_WORKFLOWS_INFINITY_URL",
    "AVAYA_WORKFLOWS_CLIENT_ID",
    "AVAYA_WORKFLOWS_CLIENT_SECRET",
    "AVAYA_WORKFLOWS_TOKEN_URL",
    "INFINITY_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in PROJECT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_avaya_names_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "https://core.acme.ec.avayacloud.com/")
    monkeypatch.setenv("CLIENT_ID", "acme-client")
    monkeypatch.setenv("CLIENT_SECRET", "s3cret-value")

    settings = load_settings()

    assert settings.infinity_url == "https://core.acme.ec.avayacloud.com"
    assert settings.client_id == "acme-client"
    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_prefixed_names_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_ID", "avaya-name")
    monkeypatch.setenv("AVAYA_WORKFLOWS_CLIENT_ID", "project-name")

    settings = load_settings(require_upstream=False)

    assert settings.client_id == "project-name"


def test_token_url_derived_from_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "https://core.acme.ec.avayacloud.com")

    settings = load_settings(require_upstream=False)

    assert settings.resolved_token_url == (
        "https://core.acme.ec.avayacloud.com/auth/realms/avaya/protocol/openid-connect/token"
    )


def test_explicit_token_url_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "https://core.acme.ec.avayacloud.com")
    monkeypatch.setenv("AVAYA_WORKFLOWS_TOKEN_URL", "https://login.acme.example/token")

    assert load_settings(require_upstream=False).resolved_token_url == "https://login.acme.example/token"


def test_dotenv_file_read(tmp_path: object) -> None:
    from pathlib import Path

    Path(".env").write_text(
        "INFINITY_URL=https://core.acme.ec.avayacloud.com\nCLIENT_ID=from-file\nCLIENT_SECRET=x1234\n"
    )

    settings = load_settings()

    assert settings.client_id == "from-file"


def test_missing_settings_all_listed() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings()

    problems = info.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("AVAYA_WORKFLOWS_INFINITY_URL (or INFINITY_URL) is missing")
    assert problems[1].startswith("AVAYA_WORKFLOWS_CLIENT_ID (or CLIENT_ID) is missing")
    assert problems[2].startswith("AVAYA_WORKFLOWS_CLIENT_SECRET (or CLIENT_SECRET) is missing")
    assert "serve --sandbox" in problems[3]


@pytest.mark.parametrize(
    "url",
    ["http://core.acme.ec.avayacloud.com", "ftp://core.acme", "core.acme.ec.avayacloud.com", "https://u:p@core.acme"],
    ids=["plain-http", "ftp", "no-scheme", "userinfo"],
)
def test_invalid_url_rejected(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("INFINITY_URL", url)

    with pytest.raises(ConfigurationError) as info:
        load_settings(require_upstream=False)

    assert "INFINITY_URL" in str(info.value)


def test_loopback_http_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "http://127.0.0.1:8085")

    assert load_settings(require_upstream=False).infinity_url == "http://127.0.0.1:8085"


def test_invalid_values_all_listed_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVAYA_WORKFLOWS_READ_TIMEOUT", "-1")
    monkeypatch.setenv("AVAYA_WORKFLOWS_STATUS_PATH_SUFFIX", "/state")
    monkeypatch.setenv("CLIENT_SECRET", "never-shown-secret")

    with pytest.raises(ConfigurationError) as info:
        load_settings(require_upstream=False)

    message = str(info.value)
    assert "READ_TIMEOUT" in message
    assert "STATUS_PATH_SUFFIX" in message
    assert "never-shown-secret" not in message


def test_sensitive_keys_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVAYA_WORKFLOWS_SENSITIVE_KEYS", "member_id, loyalty")

    assert load_settings(require_upstream=False).sensitive_keys == ["member_id", "loyalty"]


def test_missing_and_invalid_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "http://core.acme.ec.avayacloud.com")
    monkeypatch.setenv("AVAYA_WORKFLOWS_HANDLE_KEYS", "not-a-key")
    monkeypatch.setenv("AVAYA_WORKFLOWS_SENSITIVE_KEYS", "(unclosed")

    with pytest.raises(ConfigurationError) as info:
        load_settings()

    message = str(info.value)
    assert "AVAYA_WORKFLOWS_CLIENT_ID (or CLIENT_ID) is missing" in message
    assert "AVAYA_WORKFLOWS_CLIENT_SECRET (or CLIENT_SECRET) is missing" in message
    assert "AVAYA_WORKFLOWS_INFINITY_URL (or INFINITY_URL) is invalid" in message
    assert "AVAYA_WORKFLOWS_HANDLE_KEYS is invalid" in message
    assert "AVAYA_WORKFLOWS_SENSITIVE_KEYS is invalid: '(unclosed' is not a valid regular expression" in message
    assert "not-a-key" not in message


def test_blank_credentials_count_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITY_URL", "https://core.acme.ec.avayacloud.com")
    monkeypatch.setenv("CLIENT_ID", "  ")
    monkeypatch.setenv("CLIENT_SECRET", "")

    with pytest.raises(ConfigurationError) as info:
        load_settings()

    assert len(info.value.problems) == 3


def test_log_level_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVAYA_WORKFLOWS_LOG_LEVEL", "debug")

    assert load_settings(require_upstream=False).log_level == "DEBUG"


def test_valid_handle_keys_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    keys = f"{Fernet.generate_key().decode()}, {Fernet.generate_key().decode()}"
    monkeypatch.setenv("AVAYA_WORKFLOWS_HANDLE_KEYS", keys)

    settings = load_settings(require_upstream=False)

    assert settings.handle_keys is not None
    assert settings.handle_keys.get_secret_value() == keys


def test_sensitive_keys_json_array(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVAYA_WORKFLOWS_SENSITIVE_KEYS", '["^acct\\\\d{2,4}$", "loyalty"]')

    assert load_settings(require_upstream=False).sensitive_keys == ["^acct\\d{2,4}$", "loyalty"]


def test_dotenv_not_utf8_reported() -> None:
    from pathlib import Path

    Path(".env").write_bytes(b"CLIENT_ID=caf\xe9\n")

    with pytest.raises(ConfigurationError) as info:
        load_settings(require_upstream=False)

    assert ".env is not valid UTF-8" in str(info.value)
