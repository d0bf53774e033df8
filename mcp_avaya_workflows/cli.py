"""Command line: `serve` (the default, stdio), `sandbox` and `demo`."""

from __future__ import annotations

import argparse
import logging
import math
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from . import __version__
from .errors import ConfigurationError
from .logs import configure_logging
from .redaction import Redactor
from .settings import Settings, is_loopback_host, load_settings

if TYPE_CHECKING:
    import socket

    from mcp.server.mcpserver import MCPServer
    from starlette.applications import Starlette

    from .access_tokens import JwtTokenVerifier

logger = logging.getLogger(__name__)

EXIT_CONFIGURATION = 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port; use 1 to 65535, or 0 for any free port")
    return port


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {count}")
    return count


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
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="with --transport http, the number of worker processes that share the listening socket (default: 1)",
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
                workers=getattr(args, "workers", 1),
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


def _serve(*, sandbox: bool, time_scale: float, workers: int = 1, overrides: dict[str, Any] | None = None) -> None:
    settings = load_settings(require_upstream=not sandbox, **(overrides or {}))
    if workers > 1:
        _check_workers(settings, workers, sandbox=sandbox)
    if settings.transport == "http":
        from .http_transport import check_bind

        check_bind(settings)
    redactor = _redactor(settings)
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
    if settings.transport == "http" and workers > 1:
        settings = _prepare_workers(settings, workers)
    # With several workers, each worker builds its own server, and this one only checks the catalog and audit
    # settings. A bad value then stops the command with exit status 2 before any worker starts.
    server = build_server(settings, redactor=redactor, embedded_sandbox=embedded)
    if settings.transport == "http" and workers > 1:
        _serve_workers(settings, workers)
        return
    if settings.transport == "http":
        _serve_http(server, settings)
        return

    import anyio

    from .lifecycle import run_until_stopped
    from .stdio import run_stdio

    anyio.run(run_until_stopped, lambda: run_stdio(server))


def _serve_http(server: MCPServer[Any], settings: Settings) -> None:
    import anyio

    from .http_transport import Readiness, build_http_app, serve_http, warn_about_process_keys

    warn_about_process_keys(settings)

    verifier = _verifier(settings)
    readiness = Readiness()
    app = build_http_app(server, settings, verifier=verifier, readiness=readiness)
    sock = _bind(settings)

    async def serve() -> None:
        try:
            await serve_http(app, sock, log_level=settings.log_level, readiness=readiness)
        finally:
            if verifier is not None:
                await verifier.aclose()

    with sock:
        anyio.run(serve)


def _redactor(settings: Settings) -> Redactor:
    redactor = Redactor(settings.sensitive_keys)
    if settings.client_secret is not None:
        redactor.add_secret(settings.client_secret.get_secret_value())
    return redactor


def _verifier(settings: Settings) -> JwtTokenVerifier | None:
    """Return the access-token verifier when an issuer is set, after checking the issuer URL."""
    if not settings.auth_issuer:
        return None
    from .access_tokens import JwtTokenVerifier, check_issuer_url

    check_issuer_url(settings.auth_issuer)
    assert settings.public_url is not None
    return JwtTokenVerifier(issuer=settings.auth_issuer, audience=settings.public_url, jwks_url=settings.auth_jwks_url)


def _bind(settings: Settings) -> socket.socket:
    from .http_transport import bind_socket

    try:
        return bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise ConfigurationError([f"cannot listen on {settings.host} port {settings.port}: {exc.strerror}."]) from None


def _check_workers(settings: Settings, workers: int, *, sandbox: bool) -> None:
    if settings.transport != "http":
        raise ConfigurationError(
            [f"--workers {workers} needs --transport http; a stdio server has one client and runs one process."]
        )
    if sandbox:
        raise ConfigurationError(
            [
                f"--workers {workers} cannot run with --sandbox, because each worker would start a sandbox of "
                "its own and not find the sessions the others started. Run `mcp-avaya-workflows sandbox` and "
                "point the server at it with the settings it prints, or leave out --workers."
            ]
        )


def _prepare_workers(settings: Settings, workers: int) -> Settings:
    """Check once what every worker would check, and return the settings the workers share."""
    from .http_transport import warn_about_process_keys

    warn_about_process_keys(settings)
    if settings.auth_issuer:
        from .access_tokens import check_issuer_url

        check_issuer_url(settings.auth_issuer)
    return _share_across_workers(settings, workers)


def _serve_workers(settings: Settings, workers: int) -> None:
    from .http_transport import serve_workers

    with _bind(settings) as sock:
        started = serve_workers(_WorkerApp(settings), sock, workers=workers, log_level=settings.log_level)
    if not started:
        print("mcp-avaya-workflows: a worker process failed to start; the log above gives the cause.", file=sys.stderr)
        sys.exit(1)


def _share_across_workers(settings: Settings, workers: int) -> Settings:
    """Return the settings every worker gets: one copy of each key, and a share of the rate limit.

    A key left unset would otherwise be generated by each worker, so a handle or request state sealed by one
    worker would not open on another. The rate limit applies per process, so each worker keeps to 1/N of it.
    """
    updates: dict[str, Any] = {}
    if settings.handle_keys is None:
        from cryptography.fernet import Fernet

        updates["handle_keys"] = SecretStr(Fernet.generate_key().decode())
    if settings.request_state_keys is None:
        updates["request_state_keys"] = SecretStr(secrets.token_urlsafe(32))
    if updates:
        logger.info(
            "http.worker_keys_generated keys=%s workers=%d: the parent process generated each unset key once "
            "and gives it to every worker, so what one worker seals opens on the others",
            ",".join(f"AVAYA_WORKFLOWS_{name.upper()}" for name in updates),
            workers,
        )
    if settings.rate_limit_per_minute > 0:
        updates["rate_limit_per_minute"] = settings.rate_limit_per_minute / workers
        updates["rate_limit_burst"] = max(1, settings.rate_limit_burst // workers)
        logger.info(
            "http.worker_rate_limit workers=%d per_minute=%g burst=%d: each worker keeps to this share of "
            "AVAYA_WORKFLOWS_RATE_LIMIT_PER_MINUTE and AVAYA_WORKFLOWS_RATE_LIMIT_BURST",
            workers,
            updates["rate_limit_per_minute"],
            updates["rate_limit_burst"],
        )
    return settings.model_copy(update=updates)


@dataclass(frozen=True)
class _WorkerApp:
    """The app factory that each `--workers` process calls to build its own server from `settings`.

    uvicorn pickles it into each worker process, which starts a fresh interpreter, so it sets up logging again.
    """

    settings: Settings

    def __call__(self) -> Starlette:
        from uvicorn.config import STARTUP_FAILURE

        from .http_transport import Readiness, build_http_app, quiet_sdk_logs
        from .server import build_server

        redactor = _redactor(self.settings)
        configure_logging(redactor, self.settings.log_level)
        quiet_sdk_logs()
        try:
            server = build_server(self.settings, redactor=redactor)
        except ConfigurationError as exc:
            # A restart would fail the same way, and this exit status makes uvicorn stop every worker.
            logger.error("http.worker_start_failed: %s", exc)
            sys.exit(STARTUP_FAILURE)
        verifier = _verifier(self.settings)
        return build_http_app(
            server,
            self.settings,
            verifier=verifier,
            readiness=Readiness(),
            on_stop=verifier.aclose if verifier is not None else None,
        )


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
