"""Rendering console pages: Jinja2 templates shipped in the package (autoescaped), and the
security headers every console response carries."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from paybot.db.models import ConsoleRole

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
# No inline script or style anywhere: the pages load /console/static/ files only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(roles=ConsoleRole, dict=dict)
    return env


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    """The rendered ``template`` (HTML, never cached: pages carry data)."""
    html = environment().get_template(template).render(**context)
    response = web.Response(text=html, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def add_security_headers(response: web.StreamResponse, https: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    if https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


async def static_file(request: web.Request) -> web.Response:
    """``/console/static/<name>``: the stylesheet and the live-calls script, nothing else."""
    name = request.match_info["name"]
    path = STATIC_DIR / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    response = web.Response(body=_read(path), content_type=kind)
    response.headers["Cache-Control"] = "no-cache"
    return response


@functools.lru_cache(maxsize=8)
def _read(path: Path) -> bytes:
    return path.read_bytes()  # a few kB shipped in the package, read once
