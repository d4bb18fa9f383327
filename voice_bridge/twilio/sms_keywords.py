"""STOP, START and HELP at the SMS webhook, before the bot sees anything, answered the way
Twilio's Advanced Opt-Out answers them (:mod:`paybot.sms.keywords` says what matches):

* an opt-out keyword records the opt-out and confirms it once (a second STOP gets nothing);
* START or UNSTOP records the opt-in and confirms it; YES does so only for a number that has
  opted out (otherwise it is an answer in the conversation and goes to the bot);
* HELP or INFO gets the help text, opted out or not (the carriers want HELP always answered);
* anything else from an opted-out number gets no reply and does not reach the bot.

With ``PAYBOT_SMS_KEYWORD_REPLIES=false`` (Twilio's Advanced Opt-Out answers the keywords
itself) the keywords are still recorded but the bridge's reply is empty.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from paybot.sms import consent
from paybot.sms.keywords import (
    CONVERSATIONAL,
    Keyword,
    classify,
    help_text,
    opted_in_text,
    opted_out_text,
)
from voice_bridge.keys import DB_ENGINE, SETTINGS

log = logging.getLogger(__name__)


async def keyword_reply(
    app: web.Application, *, sender: str, body: str, opt_out_type: str | None, message_sid: str
) -> str | None:
    """The reply to a compliance keyword ("" for none), or None when the text is for the bot.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The opt-out state could not be read or written.
    """
    settings, engine = app[SETTINGS], app[DB_ENGINE]
    found = classify(body, opt_out_type)
    if found is None:
        if await asyncio.to_thread(consent.may_text, engine, sender):
            return None
        log.info("sms %s: from an opted-out number; not answered", message_sid)
        return ""
    kind, word = found
    if kind is Keyword.OPT_OUT:
        first = await asyncio.to_thread(consent.opt_out, engine, sender, word)
        reply = opted_out_text(settings) if first else ""
    elif kind is Keyword.OPT_IN:
        if word in CONVERSATIONAL and await asyncio.to_thread(consent.may_text, engine, sender):
            return None
        await asyncio.to_thread(consent.opt_in, engine, sender, word)
        reply = opted_in_text(settings)
    else:
        reply = help_text(settings)
    log.info("sms %s: keyword %s", message_sid, word)
    return reply if settings.sms_keyword_replies else ""
