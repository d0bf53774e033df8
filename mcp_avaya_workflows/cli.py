"""Command line: `serve` (the default, stdio), `sandbox` and `demo`."""

from __future__ import annotations

import argparse
import math
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from . import __version__
from .errors import ConfigurationError
from .logs import configure_logging
from .redaction import Redactor
from .settings import Settings, is_loopback_host, load_settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

EXIT_CONFIGURATION = 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port; use 1 to 65535, or 0 for any free port")
    return port


def _time_scale(text: str) -> float:
    try:
        factor = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(factor) or factor < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of 0 or more, such as 0.1")
    return factor


def _loopback_host(text: str) -> str:
    # The sandbox accepts a printed client secret, so other machines must not reach it.
    if not is_loopback_host(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a loopback address; use 127.0.0.1, ::1 or localhost")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-avaya-workflows",
        description="MCP server that starts Avaya Infinity workflow sessions and follows them to their outcome. "
        "Without a command it runs `serve` over stdio, which is what MCP clients launch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the MCP server over stdio (the default) or streamable HTTP")
    serve.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default=None,
        help="stdio for a client that launches the server, http for remote clients "
        "(default: AVAYA_WORKFLOWS_TRANSPORT, else stdio)",
    )
    serve.add_argument(
        "--host",
        default=None,
        help="with --transport http, the address to bind (default: AVAYA_WORKFLOWS_HOST, else 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help="with --transport http, the TCP port, 0 for any free port (default: AVAYA_WORKFLOWS_PORT, else 8000)",
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="with --transport http, allow a non-loopback address without OAuth; only for a network of trusted clients",
    )
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="serve the embedded Infinity sandbox on a loopback port instead of a real tenant; needs no credentials",
    )
    serve.add_argument(
        "--sandbox-time-scale",
        type=_time_scale,
        default=1.0,
        metavar="FACTOR",
        help="with --sandbox, multiply workflow module durations by FACTOR (default: 1.0)",
    )

    sandbox = commands.add_parser("sandbox", help="run the Infinity API sandbox on its own")
    sandbox.add_argument(
        "--host", type=_loopback_host, default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)"
    )
    sandbox.add_argument(
        "--port", type=_port, default=8085, help="TCP port to listen on, 0 for any free port (default: 8085)"
    )
    sandbox.add_argument("--client-id", default="sandbox-client", help="client ID the token endpoint accepts")
    sandbox.add_argument(
        "--client-secret", default=None, help="client secret the token endpoint accepts (default: a random one)"
    )
    sandbox.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help="multiply module durations by this factor (default: 1.0)"
    )

    demo = commands.add_parser(
        "demo", help="launch the server over stdio on the sandbox, run the example workflow and print each step"
    )
    demo.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help="multiply module durations by this factor (default: 1.0)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `mcp-avaya-workflows` console script."""
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    try:
        if command == "serve":
            overrides = {
                name: getattr(args, name, None)
                for name in ("transport", "host", "port", "allow_unauthenticated")
                if getattr(args, name, None) is not None
            }
            _serve(
                sandbox=getattr(args, "sandbox", False),
                time_scale=getattr(args, "sandbox_time_scale", 1.0),
                overrides=overrides,
            )
        elif command == "sandbox":
            _run_sandbox(args.host, args.port, args.client_id, args.client_secret, args.time_scale)
        else:
            from .demo import run_demo

            # The demo's server reads the same environment and `.env`, so a bad setting is reported here, with
            # exit status 2, instead of as a server that exited.
            load_settings(require_upstream=False)
            sys.exit(run_demo(time_scale=args.time_scale))
    except ConfigurationError as exc:
        print(f"mcp-avaya-workflows: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIGURATION)
    except KeyboardInterrupt:
        sys.exit(130)


def _serve(*, sandbox: bool, time_scale: float, overrides: dict[str, Any] | None = None) -> None:
    settings = load_settings(require_upstream=not sandbox, **(overrides or {}))
    if settings.transport == "http":
        from .http_transport import check_bind

        check_bind(settings)
    redactor = Redactor(settings.sensitive_keys)
    if settings.client_secret is not None:
        redactor.add_secret(settings.client_secret.get_secret_value())
    configure_logging(redactor, settings.log_level)

    from .server import build_server

    embedded = None
    if sandbox:
        from .sandbox import DEFAULT_CLIENT_ID, SANDBOX_CATALOG, SandboxState
        from .server import EmbeddedSandbox

        secret = secrets.token_urlsafe(24)
        redactor.add_secret(secret)
        state = SandboxState(DEFAULT_CLIENT_ID, secret, time_scale=time_scale)
        embedded = EmbeddedSandbox(state, DEFAULT_CLIENT_ID, SecretStr(secret))
        if settings.catalog is None and not settings.allow_any_workflow:
            # The sandbox's own catalog lists its demo workflows, unless the operator chose another.
            settings = settings.model_copy(update={"catalog": SANDBOX_CATALOG})
    server = build_server(settings, redactor=redactor, embedded_sandbox=embedded)
    if settings.transport == "http":
        _serve_http(server, settings)
        return

    import anyio

    from .lifecycle import run_until_stopped
    from .stdio import run_stdio

    anyio.run(run_until_stopped, lambda: run_stdio(server))


def _serve_http(server: MCPServer[Any], settings: Settings) -> None:
    import anyio

    from .http_transport import Readiness, bind_socket, build_http_app, serve_http, warn_about_process_keys

    warn_about_process_keys(settings)

    verifier = None
    if settings.auth_issuer:
        from .access_tokens import JwtTokenVerifier, check_issuer_url

        check_issuer_url(settings.auth_issuer)
        assert settings.public_url is not None
        verifier = JwtTokenVerifier(
            issuer=settings.auth_issuer, audience=settings.public_url, jwks_url=settings.auth_jwks_url
        )
    readiness = Readiness()
    app = build_http_app(server, settings, verifier=verifier, readiness=readiness)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise ConfigurationError([f"cannot listen on {settings.host} port {settings.port}: {exc.strerror}."]) from None

    async def serve() -> None:
        try:
            await serve_http(app, sock, log_level=settings.log_level, readiness=readiness)
        finally:
            if verifier is not None:
                await verifier.aclose()

    with sock:
        anyio.run(serve)


def _run_sandbox(host: str, port: int, client_id: str, client_secret: str | None, time_scale: float) -> None:
    from .sandbox import SANDBOX_CATALOG, ClientAuthority, SandboxState, serve_sandbox_forever
    from .sandbox.authority import TOKEN_PATH

    secret = client_secret or secrets.token_urlsafe(24)
    redactor = Redactor()
    configure_logging(redactor)
    state = SandboxState(client_id=client_id, client_secret=secret, time_scale=time_scale)

    def announce(url: str) -> None:
        # The operator needs these to point a server at this sandbox, so they are printed once, to stderr.
        issuer = ClientAuthority.issuer_for(url)
        clients = "\n".join(
            f"  client_id={client.client_id} client_secret={client.secret}"
            for client in state.authority.clients.values()
        )
        print(
            f"Infinity sandbox listening on {url}\n"
            f"  AVAYA_WORKFLOWS_INFINITY_URL={url}\n"
            f"  AVAYA_WORKFLOWS_CLIENT_ID={client_id}\n"
            f"  AVAYA_WORKFLOWS_CLIENT_SECRET={secret}\n"
            f"  AVAYA_WORKFLOWS_CATALOG={SANDBOX_CATALOG}\n"
            f"Authorization server for MCP clients, for `serve --transport http`:\n"
            f"  AVAYA_WORKFLOWS_AUTH_ISSUER={issuer}\n"
            f"{clients}\n"
            f"  token endpoint: POST {url}{TOKEN_PATH} with grant_type=client_credentials, the client's "
            f"credentials, and resource set to the server's AVAYA_WORKFLOWS_PUBLIC_URL",
            file=sys.stderr,
            flush=True,
        )

    try:
        serve_sandbox_forever(state, host, port, on_ready=announce)
    except RuntimeError as exc:
        # uvicorn has already logged why it could not bind, such as a port in use.
        print(f"mcp-avaya-workflows: {exc}", file=sys.stderr)
        sys.exit(1)
