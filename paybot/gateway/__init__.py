"""Payment gateways behind one interface: the embedded sandbox (default) and others."""

from paybot.gateway.base import (
    BankAccount,
    CardData,
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
    "BankAccount",
    "CardData",
    "ChargeResult",
    "Gateway",
    "GatewayError",
    "GatewayTimeout",
    "IdempotencyConflict",
    "InvalidPaymentData",
    "TokenInfo",
    "UnknownToken",
]
