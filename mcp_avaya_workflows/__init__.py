"""MCP server that starts Avaya Infinity workflow sessions and follows them to their outcome."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-avaya-workflows")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
