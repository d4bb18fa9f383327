"""Hesitations and backchannels: the sounds that carry no answer.

A *hesitation* ("um", "erm") is a caller thinking: the parsers skip it inside an answer ("four
two, um, four two"). A *backchannel* ("mhm", "uh huh") is a listener's "I hear you": said over
the bot it does not interrupt, and the yes/no reader takes it as a yes when it is all there is
to go on. A turn of nothing but :data:`FILLERS` answers no question: nobody should pay on an
"uh".
"""

from __future__ import annotations

HESITATIONS = frozenset(
    {"uh", "uhh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "hm", "mm", "mmm"}
)
"""Thinking sounds, one word each; none of them is a yes or a no."""
BACKCHANNELS = frozenset({"mhm", "uh huh", "uh-huh"})
"""A listener's murmur of assent."""
FILLERS = HESITATIONS | BACKCHANNELS | {"oh"}
"""Everything a turn may consist of and still answer nothing (and not interrupt the bot)."""
GRAMMAR_FILLERS: tuple[str, ...] = ("mm", "hmm", "mhm", "uh-huh", "um", "uh")
"""The fillers the yes/no ASR grammar listens for: a few, each in the recogniser's
dictionary, so that murmurs are heard as murmurs rather than forced into a yes or a no."""
