"""The agent console's domain: its users and their passwords, sign-in with a lockout, the
server-side sessions, payment search and the merchant settings an admin may read. The web
pages are the bridge's (voice_bridge.console)."""
