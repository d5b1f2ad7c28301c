"""Certificates about to lapse: the holder is reminded on WeChat, at 90 and at 30 days, once each."""

from __future__ import annotations

import datetime as dt

from tests.mobile_support import LI, eventually, prepare
from tests.support.miniprogram import MiniProgram
from yiwang.notifications import TEMPLATES, send_due
from yiwang.reminders import push_expiry_reminders


async def test_holder_is_reminded_once_at_90_and_once_at_30_days(services, client, fake_wechat) -> None:
    cards = await prepare(services)  # Li and Wang hold e-ID cards; only Li uses the mini-program
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    await mp.subscribe(TEMPLATES["certificate_expiry"], TEMPLATES["certificate_expiry"])
    card = await mp.get(f"/certificates/{cards['李明轩']}")
    until = dt.date.fromisoformat(card["valid_until"])

    assert await push_expiry_reminders(services, today=until - dt.timedelta(days=80)) == 1
    assert await push_expiry_reminders(services, today=until - dt.timedelta(days=79)) == 0  # same window
    assert await push_expiry_reminders(services, today=until - dt.timedelta(days=20)) == 1
    assert await push_expiry_reminders(services, today=until - dt.timedelta(days=5)) == 0

    def reminders() -> list[dict]:
        return [m for m in fake_wechat.sent_messages if m["template_id"] == TEMPLATES["certificate_expiry"]]

    await send_due(services)
    await eventually(lambda: len(reminders()) == 2)
    assert [m["data"]["date2"]["value"] for m in reminders()] == [card["valid_until"]] * 2
    assert "440106199406183318" not in str(reminders())  # no personal number in the message


async def test_nothing_is_pushed_for_certificates_far_from_lapsing(services, client, fake_wechat) -> None:
    await prepare(services)
    assert await push_expiry_reminders(services, today=dt.date(2026, 11, 26)) == 0
    assert await services.store["expiry_reminders"].count_documents({}) == 0
