"""Secure pay links: a one-time, expiring, signed web link to pay one amount on one account.

:mod:`.tokens` makes and checks the link's token and the pay form's per-render nonce (no I/O);
:mod:`.links` issues links, finds them by token and consumes them once (the ``pay_links``
table). The action server issues a link when a texter wants to pay with a new card or bank
account; the bridge serves the hosted payment page (``voice_bridge.pay_page``). See
docs/text.md, "Secure pay links".
"""

from paybot.paylinks.links import IssuedLink, LinkRefused, LinkView, PayLinks

__all__ = ["IssuedLink", "LinkRefused", "LinkView", "PayLinks"]
