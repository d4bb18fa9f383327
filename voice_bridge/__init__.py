"""The voice bridge: the aiohttp service Twilio talks to (webhooks, Media Streams, SMS).

Build it with :func:`voice_bridge.app.create_app`; run it with ``paybot bridge``
(:mod:`paybot_cli.bridge`).
"""
