"""The hosted payment page of a secure pay link (paybot.paylinks): ``GET /pay/{token}`` shows
the form, ``POST /pay/{token}`` pays (:mod:`.routes`); :mod:`.page` renders the HTML."""
