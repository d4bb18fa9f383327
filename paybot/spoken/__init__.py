"""The one spoken vocabulary: number words, months, fillers and backchannels, yes and no.

The parsers (:mod:`paybot.parsing`), the ASR grammars and language-model corpus
(``voice_bridge.asr``) and the TTS normaliser (``voice_bridge.tts``) all take their words from
here, so what the bot says, what the recogniser listens for and what the parsers read are the
same words. One module per kind: :mod:`~paybot.spoken.numbers`, :mod:`~paybot.spoken.months`,
:mod:`~paybot.spoken.fillers`, :mod:`~paybot.spoken.yes_no`.
"""
