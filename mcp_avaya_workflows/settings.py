"""Server settings, read from the environment and an optional `.env` file.

Each setting has a project name with the `AVAYA_WORKFLOWS_` prefix. The three
that Avaya's own Infinity MCP client uses (`INFINITY_URL`, `CLIENT_ID`,
`CLIENT_SECRET`) are accepted as well, so an existing configuration works
unchanged. Within one source the prefixed name wins, and the environment
wins over `.env`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigurationError
from .handles import KEY_FORMAT_HINT

PREFIX = "AVAYA_WORKFLOWS_"
# The names Avaya's own Infinity MCP client reads.
AVAYA_NAMES = frozenset({"INFINITY_URL", "CLIENT_ID", "CLIENT_SECRET"})

# Keycloak realm path under the tenant host, as Avaya's authentication guide derives it.
TOKEN_PATH = "/auth/realms/avaya/protocol/openid-connect/token"  # noqa: S105 - a URL path, not a secret


_URL_EXAMPLES = {
    "infinity_url": "https://core.example.ec.avayacloud.com",
    "token_url": "https://core.example.ec.avayacloud.com/auth/realms/avaya/protocol/openid-connect/token",
    "public_url": "https://mcp.example.com/mcp",
    "auth_issuer": "https://login.example.com/realms/mcp",
    "auth_jwks_url": "https://login.example.com/realms/mcp/protocol/openid-connect/certs",
}


def _env(name: str, *avaya_names: str) -> AliasChoices:
    return AliasChoices(PREFIX + name, *avaya_names)


class Settings(BaseSettings):
    """Everything the server needs to reach one Infinity tenant."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, allow_inf_nan=False
    )

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
    connect_timeout: float = Field(
        5.0, gt=0, le=60, validation_alias=_env("CONNECT_TIMEOUT"), description="Seconds to open a connection"
    )
    read_timeout: float = Field(
        10.0, gt=0, le=120, validation_alias=_env("READ_TIMEOUT"), description="Seconds to wait for each read"
    )
    call_timeout: float = Field(
        30.0,
        ge=1,
        le=50,
        validation_alias=_env("CALL_TIMEOUT"),
        description="Seconds a tool call may take, retries and rate-limit waits included, besides wait_seconds",
    )
    max_wait_seconds: float = Field(
        30.0,
        ge=0,
        le=50,
        validation_alias=_env("MAX_WAIT_SECONDS"),
        description="Largest wait_seconds the status tool accepts",
    )
    retry_attempts: int = Field(
        4, ge=1, le=10, validation_alias=_env("RETRY_ATTEMPTS"), description="Attempts per upstream request"
    )
    retry_backoff_initial: float = Field(
        0.25, gt=0, le=10, validation_alias=_env("RETRY_BACKOFF_INITIAL"), description="First backoff, in seconds"
    )
    retry_backoff_max: float = Field(
        4.0, gt=0, le=30, validation_alias=_env("RETRY_BACKOFF_MAX"), description="Maximum backoff, in seconds"
    )
    rate_limit_per_minute: float = Field(
        100.0,
        ge=0,
        le=1_000_000,
        validation_alias=_env("RATE_LIMIT_PER_MINUTE"),
        description="Requests a minute this process sends to Infinity; 0 turns the limit off",
    )
    rate_limit_burst: int = Field(
        20, ge=1, le=100_000, validation_alias=_env("RATE_LIMIT_BURST"), description="Requests sent at once"
    )
    token_refresh_leeway: int = Field(60, ge=0, le=600, validation_alias=_env("TOKEN_REFRESH_LEEWAY"))
    status_path_suffix: Literal["", "/status"] = Field("", validation_alias=_env("STATUS_PATH_SUFFIX"))
    handle_keys: SecretStr | None = Field(None, validation_alias=_env("HANDLE_KEYS"))
    handle_ttl: int = Field(86_400, ge=60, le=30 * 86_400, validation_alias=_env("HANDLE_TTL"))
    sensitive_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SENSITIVE_KEYS")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    catalog: Path | None = Field(
        None, validation_alias=_env("CATALOG"), description="TOML file listing the workflows the agent may start"
    )
    allow_any_workflow: bool = Field(False, validation_alias=_env("ALLOW_ANY_WORKFLOW"))
    read_only: bool = Field(False, validation_alias=_env("READ_ONLY"))
    typed_tools: bool = Field(False, validation_alias=_env("TYPED_TOOLS"))
    audit_log: str = Field(
        "stderr", validation_alias=_env("AUDIT_LOG"), description="'stderr', 'off', or a file to append JSON lines to"
    )
    max_output_value_chars: int = Field(4096, ge=64, le=1_000_000, validation_alias=_env("MAX_OUTPUT_VALUE_CHARS"))
    max_output_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024, validation_alias=_env("MAX_OUTPUT_BYTES"))
    transport: Literal["stdio", "http"] = Field(
        "stdio", validation_alias=_env("TRANSPORT"), description="'stdio' for a local client, 'http' for remote ones"
    )
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"), description="Address the HTTP transport binds")
    port: int = Field(8000, ge=0, le=65535, validation_alias=_env("PORT"), description="Port of the HTTP transport")
    public_url: str | None = Field(
        None,
        validation_alias=_env("PUBLIC_URL"),
        description="URL clients use for the MCP endpoint; the OAuth resource identifier and token audience",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("ALLOWED_HOSTS"),
        description="Host header values the HTTP transport accepts, such as mcp.example.com or 127.0.0.1:*",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("ALLOWED_ORIGINS"),
        description="Origin header values the HTTP transport accepts, such as https://chat.example.com",
    )
    allow_unauthenticated: bool = Field(
        False,
        validation_alias=_env("ALLOW_UNAUTHENTICATED"),
        description="Serve HTTP on a non-loopback address without OAuth; for a trusted network only",
    )
    auth_issuer: str | None = Field(
        None,
        validation_alias=_env("AUTH_ISSUER"),
        description="Issuer URL of the authorization server whose access tokens the HTTP transport accepts",
    )
    auth_jwks_url: str | None = Field(
        None, validation_alias=_env("AUTH_JWKS_URL"), description="JWKS URL; discovered from the issuer when unset"
    )
    auth_start_scope: str = Field("workflows:start", min_length=1, validation_alias=_env("AUTH_START_SCOPE"))
    auth_read_scope: str = Field("workflows:read", min_length=1, validation_alias=_env("AUTH_READ_SCOPE"))
    request_state_keys: SecretStr | None = Field(
        None,
        validation_alias=_env("REQUEST_STATE_KEYS"),
        description="Comma-separated secrets of 32 bytes or more that seal the SDK's request state",
    )

    @field_validator("infinity_url", "token_url", "public_url", "auth_issuer", "auth_jwks_url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"must be an absolute http(s) URL such as {_URL_EXAMPLES[info.field_name or '']}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must not contain credentials, a query or a fragment")
        # Plain HTTP would send the client secret and bearer tokens in clear text.
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https; plain http is allowed only for a loopback address")
        return value.rstrip("/")

    @field_validator("catalog", mode="before")
    @classmethod
    def _blank_catalog(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("audit_log")
    @classmethod
    def _check_audit_log(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("is empty; use 'stderr', 'off' or the path of a file to append to")
        if value.lower() == "stdout":
            raise ValueError("cannot be stdout, which carries the MCP protocol; use 'stderr', 'off' or a file path")
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        if self.retry_backoff_initial > self.retry_backoff_max:
            raise ValueError(
                "AVAYA_WORKFLOWS_RETRY_BACKOFF_INITIAL is larger than AVAYA_WORKFLOWS_RETRY_BACKOFF_MAX; "
                "lower the first or raise the second"
            )
        return self

    @model_validator(mode="after")
    def _one_allowlist(self) -> Settings:
        if self.catalog is not None and self.allow_any_workflow:
            raise ValueError(
                "AVAYA_WORKFLOWS_CATALOG and AVAYA_WORKFLOWS_ALLOW_ANY_WORKFLOW are both set; "
                "a catalog already decides which workflows may start, so unset one of them"
            )
        return self

    @field_validator("client_id", "scope", mode="before")
    @classmethod
    def _strip_blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("client_secret", mode="before")
    @classmethod
    def _drop_blank_secret(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("handle_keys")
    @classmethod
    def _check_handle_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [key.strip() for key in value.get_secret_value().split(",") if key.strip()]
        try:
            for key in keys:
                Fernet(key.encode())
        except ValueError:
            raise ValueError(KEY_FORMAT_HINT) from None
        return value if keys else None

    @field_validator("sensitive_keys")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("request_state_keys")
    @classmethod
    def _check_request_state_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = request_state_key_list(value)
        if any(len(key.encode()) < MIN_REQUEST_STATE_KEY_BYTES for key in keys):
            raise ValueError(REQUEST_STATE_KEY_HINT)
        return value if keys else None

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(char.isspace() or char in "/?#@" for char in value):
            raise ValueError("must be an IP address or a host name, such as 127.0.0.1 or 0.0.0.0")
        return value

    @model_validator(mode="after")
    def _check_http_auth(self) -> Settings:
        if self.transport == "http" and self.auth_issuer and not self.public_url:
            raise ValueError(
                "AVAYA_WORKFLOWS_AUTH_ISSUER is set but AVAYA_WORKFLOWS_PUBLIC_URL is not; set it to the URL "
                "clients use for the MCP endpoint, such as https://mcp.example.com/mcp, which tokens must name "
                "as their audience"
            )
        if self.auth_start_scope == self.auth_read_scope:
            raise ValueError(
                "AVAYA_WORKFLOWS_AUTH_START_SCOPE and AVAYA_WORKFLOWS_AUTH_READ_SCOPE are the same; starting and "
                "reading need separate scopes"
            )
        return self

    @field_validator("sensitive_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            # A JSON array keeps commas inside patterns such as ^acct\d{2,4}$.
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("is not a valid JSON array of strings") from None
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


MIN_REQUEST_STATE_KEY_BYTES = 32
REQUEST_STATE_KEY_HINT = (
    "each comma-separated key must be at least 32 bytes long; generate one with "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


def request_state_key_list(value: SecretStr) -> list[str]:
    """Split the request-state key setting into its keys, the sealing one first."""
    return [key.strip() for key in value.get_secret_value().split(",") if key.strip()]


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
    except UnicodeDecodeError:
        raise ConfigurationError([".env is not valid UTF-8: save it as UTF-8, or remove it."]) from None
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        if require_upstream:
            problems = _missing_besides(exc, overrides) + problems
        raise ConfigurationError(problems) from None
    if require_upstream:
        settings.require_upstream()
    return settings


def _missing_besides(exc: ValidationError, overrides: dict[str, Any]) -> list[str]:
    """List the required settings that are missing, in addition to the invalid ones in `exc`."""
    invalid = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    fields = {name: info for name, info in Settings.model_fields.items() if _aliases(name, info) & invalid}
    defaults = {name: info.get_default(call_default_factory=True) for name, info in fields.items()}
    try:
        # Reading again with the invalid fields at their defaults shows which of the others are unset.
        blanked = Settings(**{**overrides, **defaults})
    except ValidationError:
        return []
    return [
        _missing(name)
        for name in ("infinity_url", "client_id", "client_secret")
        if name not in fields and not getattr(blanked, name)
    ]


def _aliases(name: str, info: Any) -> set[str]:
    choices = getattr(info.validation_alias, "choices", [])
    return {name, *(str(choice) for choice in choices)}


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return f"{message}."
    field = ".".join(str(part) for part in error["loc"])
    name = field.removeprefix(PREFIX).upper()
    avaya_name = f" (or {name})" if name in AVAYA_NAMES else ""
    # The input value is left out on purpose: it may be the client secret.
    return f"{PREFIX}{name}{avaya_name} is invalid: {message}."
