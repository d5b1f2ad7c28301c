"""Revocation is immediate everywhere: once the resident revokes, no agent endpoint shows them."""

from __future__ import annotations

import datetime as dt

from tests.mobile_support import HUANG, LI, SS_CARD, SS_FORM, WANG, prepare
from tests.support.miniprogram import MiniProgram, jpeg_bytes
from yiwang.agents import issue_activation_code
from yiwang.timeutil import local_today


async def test_after_revocation_the_agent_queue_and_every_agent_endpoint_show_nothing_of_the_resident(
    services, client, fake_wechat
) -> None:
    cards = await prepare(services, agents=True)
    li, wang, agent = (MiniProgram(client, fake_wechat) for _ in range(3))
    for mp, person in ((li, LI), (wang, WANG), (agent, HUANG)):
        await mp.login()
        await mp.bind(*person)
    code = await issue_activation_code(services, "ch-agent-001")
    await agent.post("/me/agent-activation", {"agent": "ch-agent-001", "activation_code": code})
    until = (local_today() + dt.timedelta(days=30)).isoformat()
    filed = {}
    for mp, person in ((li, LI), (wang, WANG)):
        grant = await mp.post("/authorisations", {"agent": "ch-agent-001", "items": [SS_CARD], "until": until})
        photo = await agent.upload(jpeg_bytes(), path="/agent/uploads", authorisation=grant["id"])
        refs = [{"material": "applicant_id_card", "certificate": cards[person[0]]},
                {"material": "photo", "upload": photo["id"]}]
        form = {k: v for k, v in SS_FORM.items() if k not in ("applicant_name", "id_number")}
        app = await agent.apply(SS_CARD, form, refs, path="/agent/applications", authorisation=grant["id"])
        filed[person[0]] = (grant, app)
    queue = await agent.get("/agent/queue")
    assert len(queue["applications"]) == 2 and len(queue["authorisations"]) == 2

    li_grant, li_app = filed["李明轩"]
    await li.post(f"/authorisations/{li_grant['id']}/revoke", {})
    queue = await agent.get("/agent/queue")
    assert [a["id"] for a in queue["applications"]] == [filed["王静怡"][1]["id"]]
    assert [a["id"] for a in queue["authorisations"]] == [filed["王静怡"][0]["id"]]
    text = str(queue)
    assert li_app["id"] not in text and li_app["tracking_number"] not in text and "李*" not in text
    assert (await agent.get(f"/agent/applications/{li_app['id']}", expect=403))["error"]["code"] == \
        "agent.not_authorised"
    await agent.upload(jpeg_bytes(), path="/agent/uploads", authorisation=li_grant["id"], expect=403)
    await agent.apply(SS_CARD, {}, [], path="/agent/applications", authorisation=li_grant["id"], expect=403)
    # the resident still sees their own application and the agent's activity
    assert (await li.get(f"/applications/{li_app['id']}"))["agent"] == "ch-agent-001"
