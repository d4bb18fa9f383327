"""The voice calls that take money, again with the whole stack on PostgreSQL.

``paybot up`` gets ``DATABASE_URL`` pointing at a fresh schema of ``PAYBOT_TEST_DATABASE_URL``
(dropped afterwards): the Rasa actions (a stored card) and the bridge (a new card keyed in the
secure capture, a hang-up right after confirming) write their payments there, under the keys
and in the columns PostgreSQL enforces. Skipped without that variable.
"""

from __future__ import annotations

import pytest

from tests.conftest import fresh_schema, require_pg, schema_url
from tests.test_voice_calls import (  # noqa: F401  (collected again, on this module's stack)
    fake_twilio,
    fresh_data,
    questions_checked,
    test_hang_up_right_after_confirming_settles_the_payment,
    test_james_pays_with_stored_card_by_voice,
    test_new_card_keyed_in_secure_capture_pays,
    voice_stack,
)

pytestmark = [pytest.mark.services, pytest.mark.postgres]


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, fake_twilio):  # noqa: F811
    url = require_pg(request.node.nodeid)
    with fresh_schema(url, "paybot_voice") as schema:
        running = voice_stack(tmp_path_factory, fake_twilio, DATABASE_URL=schema_url(url, schema))
        yield from running
