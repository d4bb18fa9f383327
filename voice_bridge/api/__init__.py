"""The contact-centre JSON API under ``/api`` (docs/contact-centre.md)."""
