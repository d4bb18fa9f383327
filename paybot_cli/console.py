"""Terminal output shared by the commands: status lines, errors and child output.

Status lines go to stdout as ``paybot: ...``; errors to stderr. Output of child processes
(Rasa, the action server, the bridge) is forwarded line by line with a ``[name]`` prefix,
redacted (:func:`paybot.redaction.redact`).
All writes take one lock so that lines from different threads never interleave.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO

from paybot.redaction import redact

_lock = threading.Lock()
_json = False  # use_json()
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\([0-9A-Za-z]")
_PROGRESS = re.compile(r"\d+%\||it/s|s/it")  # a tqdm progress bar
_LINE_BREAK = re.compile(rb"[\r\n]")
PROGRESS_EVERY_S = 10.0


def use_json(enabled: bool = True) -> None:
    """``paybot up`` with ``PAYBOT_LOG_FORMAT=json``: every line it writes is one JSON object:
    its own status lines, and each child's line with ``service`` added (a line that is not
    JSON already becomes the ``message`` of one)."""
    global _json
    _json = enabled


def _json_line(message: str, level: str, logger: str, **more: str) -> str:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry = {"time": stamp, "level": level, "logger": logger, "message": message, **more}
    return json.dumps(entry, ensure_ascii=False)


def emit(line: str, stream: IO[str] | None = None) -> None:
    """Write one line to ``stream`` (default stdout) and flush it (in JSON mode, a line that
    is not JSON yet as the ``message`` of one)."""
    if _json and not line.startswith("{"):
        line = _json_line(line, "INFO", "paybot")
    with _lock:
        print(line, file=stream or sys.stdout, flush=True)


def say(message: str) -> None:
    """Print a status line: ``paybot: <message>`` on stdout."""
    emit(_json_line(message, "INFO", "paybot") if _json else f"paybot: {message}")


def fail(message: str) -> None:
    """Print an error line: ``paybot: <message>`` on stderr."""
    emit(_json_line(message, "ERROR", "paybot") if _json else f"paybot: {message}", sys.stderr)


def forward_output(pipe: IO[bytes], prefix: str) -> threading.Thread:
    """Forward ``pipe`` line by line to stdout, each line prefixed ``[prefix]``.

    Progress bars (tqdm redraws separated by carriage returns) are thinned out to one line
    every ten seconds plus the final one. The pump runs in a daemon thread until EOF.

    Args:
        pipe: A child's stdout (stderr merged into it), opened in binary mode.
        prefix: The name shown in brackets, e.g. ``rasa``.

    Returns:
        The started thread; join it after the child exits to flush the last lines.
    """
    thread = threading.Thread(
        target=_pump, args=(pipe, prefix), name=f"forward-{prefix}", daemon=True
    )
    thread.start()
    return thread


def _pump(pipe: IO[bytes], prefix: str) -> None:
    strip_colours = not sys.stdout.isatty()
    last_progress = 0.0
    pending = b""
    read = getattr(pipe, "read1", pipe.read)
    while chunk := read(65536):
        *lines, pending = _LINE_BREAK.split(pending + chunk)
        for raw in lines:
            last_progress = _forward_line(raw, prefix, strip_colours, last_progress)
    if pending:
        _forward_line(pending, prefix, strip_colours, 0.0)
    pipe.close()


def _forward_line(raw: bytes, prefix: str, strip_colours: bool, last_progress: float) -> float:
    """Print one line unless it is a progress redraw too soon after the last; return the
    time of the last progress line printed."""
    line = raw.decode("utf-8", errors="replace").rstrip()
    if strip_colours:
        line = _ANSI.sub("", line)
    if not line.strip():
        return last_progress
    if _PROGRESS.search(line):
        now = time.monotonic()
        if "100%|" not in line and now - last_progress < PROGRESS_EVERY_S:
            return last_progress
        last_progress = now
    emit(_child_json(redact(line), prefix) if _json else f"[{prefix}] {redact(line)}")
    return last_progress


def _child_json(line: str, service: str) -> str:
    """A child's (redacted) line as one JSON object naming the ``service``."""
    try:
        entry = json.loads(line) if line.startswith("{") else None
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        return _json_line(line, "INFO", service, service=service)
    entry["service"] = service
    return json.dumps(entry, ensure_ascii=False)
