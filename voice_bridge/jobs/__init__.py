"""The bridge's background work: the receipt sender, the unknown-payment recheck, the scheduler,
and the call records the webhooks and calls write."""
