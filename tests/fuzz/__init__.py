"""The conversation fuzzer: a seeded simulated customer that talks to the running stack over
chat (Rasa's REST channel) and SMS (the bridge's signed Twilio webhook), mostly on script and
off script at random, and the invariants every conversation must keep (tests/fuzz/runner.py)."""
