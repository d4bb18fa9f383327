"""Yes and no: the phrases read as an answer to a yes/no question.

:data:`GRAMMAR_YES` and :data:`GRAMMAR_NO` are the common spoken answers the ASR yes/no
grammar listens for (few, and each in the recogniser's dictionary, so that they stay apart in
sound). :data:`YES_PHRASES` and :data:`NO_PHRASES` hold them and every other phrase the yes/no
reader (:func:`paybot.parsing.yesno.parse_yes_no`) accepts, typed forms and the keypad's "1"
and "2" (and the spoken "one" and "two", as the prompts say "press 1 if correct") included.
"""

from __future__ import annotations

from .fillers import BACKCHANNELS, HESITATIONS

GRAMMAR_YES: tuple[str, ...] = (
    "yes", "yeah", "yep", "yes please", "yes it is", "yes that's right", "that's right",
    "that is right", "correct", "that's correct", "right", "sure", "okay", "absolutely",
    "go ahead", "of course",
)  # fmt: skip
GRAMMAR_NO: tuple[str, ...] = (
    "no", "nope", "no thanks", "no thank you", "no it isn't", "no it's not", "not now",
    "not yet", "that's wrong", "wrong", "incorrect", "not right",
)  # fmt: skip

YES_PHRASES = frozenset(
    {
        *GRAMMAR_YES, *BACKCHANNELS,
        "yea", "yup", "ya", "yah", "ok", "k", "alright", "all right", "fine", "definitely",
        "certainly", "affirmative", "that is correct", "that's it", "it is", "it's right",
        "it's correct", "go for it", "please do", "do it", "sounds good", "that works", "i am",
        "i do", "i'm ready", "ready", "sure thing", "you bet", "exactly", "proceed", "confirm",
        "confirmed", "y", "1", "one", "why not", "fine by me", "works for me", "that's fine",
        "sounds great", "let's do it", "go on", "yes sir", "yes ma'am",
    }
)  # fmt: skip
NO_PHRASES = frozenset(
    {
        *GRAMMAR_NO,
        "nah", "naw", "don't", "do not", "not correct", "that is wrong", "that's not right",
        "that is not right", "that's not correct", "that is not correct", "it's not",
        "it is not", "it isn't", "isn't", "no way", "negative", "not really", "not at all",
        "i don't", "i do not", "i'm not", "i am not", "don't do it", "please don't", "n", "2",
        "two", "absolutely not", "definitely not", "certainly not", "of course not",
    }
)  # fmt: skip
NEUTRAL_PHRASES = HESITATIONS | {
    "oh", "well", "so", "please", "thanks", "thank you", "then", "do",
}  # fmt: skip
"""Words said around an answer that carry no polarity ("um yes", "no thanks", "yes please do",
"alright then" stay a yes and a no)."""
