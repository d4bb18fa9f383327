"""The contact-centre API's domain: its clients and their payment sessions
(docs/contact-centre.md). The HTTP edge is :mod:`voice_bridge.api`."""
