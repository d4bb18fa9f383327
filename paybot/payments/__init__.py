"""Taking money: amount rules, fees, confirmation numbers and the ledger that records it all."""
