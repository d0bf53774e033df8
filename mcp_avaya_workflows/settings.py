"""Server settings, read from the environment and an optional `.env` file.

Each setting has a project name with the `AVAYA_WORKFLOWS_` prefix. The three
that Avaya's own Infinity MCP client uses (`INFINITY_URL`, `CLIENT_ID`,
`CLIENT_SECRET`) are accepted as well, so an existing configuration works
unchanged; the prefixed name wins when both are set.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigurationError

PREFIX = "AVAYA_WORKFLOWS_"

# Keycloak realm path under the tenant host, as Avaya's authentication guide derives it.
TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"  # noqa: S105 - a URL path, not a secret


def _env(name: str, *avaya_names: str) -> AliasChoices:
    return AliasChoices(PREFIX + name, *avaya_names)


class Settings(BaseSettings):
    """Everything the server needs to reach one Infinity tenant."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    infinity_url: str | None = Field(
        None,
        validation_alias=_env("INFINITY_URL", "INFINITY_URL"),
        description="Tenant base URL, https://core.{subdomain}.ec.avayacloud.com",
    )
    client_id: str | None = Field(None, validation_alias=_env("CLIENT_ID", "CLIENT_ID"))
    client_secret: SecretStr | None = Field(None, validation_alias=_env("CLIENT_SECRET", "CLIENT_SECRET"))
    token_url: str | None = Field(
        None,
        validation_alias=_env("TOKEN_URL"),
        description="OAuth token endpoint; derived from infinity_url when unset",
    )
    scope: str | None = Field(None, validation_alias=_env("SCOPE"), description="e.g. workflows:execute")
    connect_timeout: float = Field(5.0, gt=0, le=60, validation_alias=_env("CONNECT_TIMEOUT"))
    read_timeout: float = Field(30.0, gt=0, le=300, validation_alias=_env("READ_TIMEOUT"))
    token_refresh_leeway: int = Field(60, ge=0, le=600, validation_alias=_env("TOKEN_REFRESH_LEEWAY"))
    status_path_suffix: Literal["", "/status"] = Field("", validation_alias=_env("STATUS_PATH_SUFFIX"))
    handle_keys: SecretStr | None = Field(None, validation_alias=_env("HANDLE_KEYS"))
    handle_ttl: int = Field(86_400, ge=60, le=30 * 86_400, validation_alias=_env("HANDLE_TTL"))
    sensitive_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SENSITIVE_KEYS")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=_env("LOG_LEVEL"))

    @field_validator("infinity_url", "token_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://core.example.ec.avayacloud.com")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must not contain credentials, a query or a fragment")
        # Plain HTTP would send the client secret and bearer tokens in clear text.
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https; plain http is allowed only for a loopback address")
        return value.rstrip("/")

    @field_validator("sensitive_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def resolved_token_url(self) -> str:
        """Token endpoint: the explicit setting, else derived from the tenant host."""
        if self.token_url:
            return self.token_url
        if not self.infinity_url:
            raise ConfigurationError([_missing("infinity_url")])
        return self.infinity_url + TOKEN_PATH

    def require_upstream(self) -> None:
        """Raise `ConfigurationError` listing every setting needed to reach Infinity that is unset."""
        problems = [
            _missing(name) for name in ("infinity_url", "client_id", "client_secret") if not getattr(self, name)
        ]
        if problems:
            raise ConfigurationError([*problems, SANDBOX_HINT])


_FIXES = {
    "infinity_url": (
        "AVAYA_WORKFLOWS_INFINITY_URL (or INFINITY_URL) is missing: set it to the tenant's "
        "https://core.<subdomain>.ec.avayacloud.com"
    ),
    "client_id": (
        "AVAYA_WORKFLOWS_CLIENT_ID (or CLIENT_ID) is missing: set it to the API client's ID "
        "from the Infinity admin portal"
    ),
    "client_secret": "AVAYA_WORKFLOWS_CLIENT_SECRET (or CLIENT_SECRET) is missing: set it to that client's secret",
}
SANDBOX_HINT = "To try the server without a tenant, run `mcp-avaya-workflows serve --sandbox`."


def _missing(name: str) -> str:
    return f"{_FIXES[name]}."


def is_loopback_host(host: str) -> bool:
    """Tell whether `host` names this machine: `localhost` or a loopback IP address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(*, require_upstream: bool = True, **overrides: Any) -> Settings:
    """Read settings from the environment and `.env`, raising one `ConfigurationError` for all problems."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError([_describe(error) for error in exc.errors()]) from None
    if require_upstream:
        settings.require_upstream()
    return settings


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "settings"
    name = field.removeprefix(PREFIX).lower()
    # The input value is left out on purpose: it may be the client secret.
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{PREFIX}{name.upper()} is invalid: {message}."
