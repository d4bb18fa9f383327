"""One phone call: the handler behind one Media Streams websocket, and its parts (end of turn,
listening, playback, keypad answers, the Rasa client)."""
