"""URL paths the sandbox serves, matching Avaya Infinity's Keycloak realm and Workflow Sessions API."""

from __future__ import annotations

REALM_PREFIX = "/auth/realms/avaya"
TOKEN_PATH = REALM_PREFIX + "/protocol/openid-connect/token"
JWKS_PATH = REALM_PREFIX + "/protocol/openid-connect/certs"
SESSIONS_PATH = "/api/workflow/v1/workflows/sessions"
CONTROL_PREFIX = "/_sandbox"
