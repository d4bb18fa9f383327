"""Code that runs inside Rasa: the hardened REST input channel (:mod:`rasa_plugins.channel`),
the launcher ``paybot up`` runs Rasa with (:mod:`rasa_plugins.rasa_server`) and the bounded
in-memory tracker store (:mod:`rasa_plugins.tracker_store`). ``bot/credentials.yml`` and
``bot/endpoints.yml`` name them; nothing in paybot imports them.
"""
