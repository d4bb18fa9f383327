"""The Twilio edge: typed Media Streams messages, webhook signatures, per-call stream tokens,
TwiML, the REST client, the webhooks and the Media Streams websocket route."""
