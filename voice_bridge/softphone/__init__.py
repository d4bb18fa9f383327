"""The browser softphone at ``/phone`` (:mod:`.routes`; docs/softphone.md)."""
