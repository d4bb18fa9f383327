"""The agent console at ``/console``: server-rendered pages (Jinja2) on the bridge, a
sub-application with its own security middleware (voice_bridge.console.guard)."""
