"""Custom actions for the Rasa action server (``rasa run actions --actions actions``).

The Rasa SDK imports every module of this package and registers each ``Action`` subclass it
finds, so modules here must do no work at import time: they define classes and constants only.
"""
