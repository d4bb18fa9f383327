"""What the simulated customer says: on-script answers and off-script pools.

The off-script pools are the customer's own paraphrases, not the NLU training examples
(tests/test_fuzz_conversations.py checks that none of them is one).
"""

from __future__ import annotations

OFF_SCRIPT: dict[str, tuple[str, ...]] = {
    "greeting": (
        "hello again", "hey hey hey", "good day to you", "hi hi hi", "heya", "hello? anyone?",
        "top of the morning", "well hello", "hey, it's me again", "hi folks", "evening", "hullo",
    ),
    "filler": (
        "umm", "uhhh", "hmm...", "er", "mmm", "erm", "uh, hold on", "one sec", "let me think",
        "hang on a moment", "ummm let me see", "um um",
    ),
    "gibberish": (
        "asdkjh", "qqq", "zzzz", "blarg fnord", "lkjlkj wer", "x", ".", "!!!", "??!!",
        "pfft", "mxyzptlk", "ghfj ghfj",
    ),
    "out_of_scope": (
        "what's the weather doing this weekend", "can you order me a taxi",
        "who won the match yesterday", "tell me a bedtime story", "do you sell car insurance",
        "I need to change my mailing address", "my internet keeps dropping",
        "what time do your offices close", "recommend me a podcast",
        "how many legs does a spider have", "can I get a new meter installed",
    ),
    "balance": (
        "how much is on my bill", "what do I owe at the moment", "tell me my current balance",
        "when does my bill have to be paid", "how much is owing",
    ),
    "agent": (
        "can I get a human on the line", "I'd rather talk to staff",
        "put a real employee on", "connect me with your billing team",
    ),
    "repeat": (
        "say it one more time please", "sorry, again?", "come again please",
        "could you go over that once more",
    ),
    "help": (
        "what can you do for me", "I'm confused, what are the options",
        "how am I supposed to do this", "what am I meant to type here",
    ),
    "goodbye": (
        "ok I'm off, bye", "later!", "gotta run, thanks", "that's it from me, bye bye",
        "I'm leaving now",
    ),
    "thanks": ("cheers", "thx a bunch", "thanks so so much", "much obliged"),
    "start_over": (
        "let's redo this from the start", "can we begin all over again",
        "start the whole thing again",
    ),
    "never_mind": (
        "never mind then", "nah forget that", "scrap that", "oh never mind",
        "forget it all",
    ),
    "question_mark": ("?", "??", "huhh?", "wait what??"),
    "real_person": (
        "is this a real person or what", "am I chatting with a robot", "r u a human",
        "is anybody real there",
    ),
    "misplaced_yes": ("yeah ok", "yup yup", "sure, why not", "yes yes ok", "alright then"),
    "misplaced_no": (
        "nope nope", "nah nah", "no, that'd be everything", "no im fine ta", "no way jose",
    ),
}

# Replies that count as an explicit yes to a confirmation question.
AFFIRMATIVE = {
    *OFF_SCRIPT["misplaced_yes"],
    "yes", "yes please", "yes go ahead", "yes, go ahead", "yep, do it", "confirm",
}

YES = ("yes", "yes please", "yes go ahead", "yes, go ahead", "yep, do it", "confirm")
NO = ("no", "no thanks", "no thank you", "nope, all good")
START = ("hi", "hello", "I want to pay my bill", "I'd like to make a payment", "pay my bill")
PAY = ("I want to pay my bill", "I'd like to make a payment", "pay my bill")
SCHEDULE = ("can I schedule a payment", "schedule a payment please")
USE_STORED = ("use my card on file", "the one on file", "use the saved card", "the card on file")
AMOUNTS = ("$5", "5 dollars", "ten dollars", "$7.50", "$12")
DATES = ("tomorrow", "in 3 days", "in two days")
