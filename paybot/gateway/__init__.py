"""Payment gateways behind one interface: the embedded sandbox (default) and others.

The card-data types are in :mod:`paybot.gateway.card_data`, not re-exported here.
"""

from paybot.gateway.base import (
    CardDeclined,
    ChargeResult,
    Gateway,
    GatewayError,
    GatewayTimeout,
    IdempotencyConflict,
    InvalidPaymentData,
    TokenInfo,
    UnknownToken,
)

__all__ = [
    "CardDeclined",
    "ChargeResult",
    "Gateway",
    "GatewayError",
    "GatewayTimeout",
    "IdempotencyConflict",
    "InvalidPaymentData",
    "TokenInfo",
    "UnknownToken",
]
