"""Checks on the network: is a port free, does a health endpoint answer 200."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request

# Health checks go straight to local services, never through an HTTP proxy from the env.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def port_in_use(host: str, port: int) -> bool:
    """True when nothing can listen on ``host:port`` because something already does.

    Binds a throwaway socket with ``SO_REUSEADDR`` (as the servers do), so connections
    lingering in TIME_WAIT do not count as "in use".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 within ``timeout_s``; any failure is False."""
    with (
        contextlib.suppress(urllib.error.URLError, OSError, ValueError),
        _OPENER.open(url, timeout=timeout_s) as response,
    ):
        return response.status == 200
    return False
