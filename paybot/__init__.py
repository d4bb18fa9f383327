"""paybot: the shared domain package used by the action server and the voice bridge.

Settings, database tables, money and phone helpers, the payment gateways and the ledger
live here, so that ``actions/`` and ``voice_bridge/`` import one copy of them.
"""

__version__ = "0.1.0"
