"""The icon that clients show next to this server and its tools.

MCP icons are URIs, so the SVG travels inline as a `data:` URI and the server
needs no web host for it.
"""

from __future__ import annotations

import base64

from mcp.types import Icon

# Two steps joined by an arrow: a workflow moving from one module to the next.
WORKFLOW_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#C62828" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    '<rect x="2" y="3" width="7" height="6" rx="1.5"/><rect x="15" y="15" width="7" height="6" rx="1.5"/>'
    '<path d="M9 6h3.5a2 2 0 0 1 2 2v7"/><path d="m12 12.5 2.5 2.5 2.5-2.5"/></svg>'
)

WORKFLOW_ICON = Icon(
    src="data:image/svg+xml;base64," + base64.b64encode(WORKFLOW_SVG.encode()).decode("ascii"),
    mime_type="image/svg+xml",
    # "any" is how MCP marks a scalable icon, such as an SVG.
    sizes=["any"],
)
ICONS = [WORKFLOW_ICON]
