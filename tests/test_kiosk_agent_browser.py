"""Agent mode (代办) at the kiosk, in Chromium through the device agent, with the scripted
mini-program as the agent's phone: sign in (QR + phone code), the screens say who is handled
for whom, the resident's ID card records the authorisation, the agent files, audited as
agent X for resident Y. Screenshots: tests/artifacts/kiosk-agent-*.png."""

from __future__ import annotations

import json

import pytest

from tests.kiosk_support import RESIDENT
from tests.support.browser import LANDSCAPE, PORTRAIT, PageFactory, screenshot
from tests.support.device_agent import RunningAgent, kiosk_agent
from tests.support.miniprogram import ApiError, MiniProgram
from yiwang import agents, certificates, qrdecode
from yiwang.runtime import Services

__all__ = ["kiosk_agent"]
pytestmark = pytest.mark.browser
AGENT = "ch-agent-001"
ITEM = "002004102000"  # 养老保险待遇领取资格认证


async def agent_phone(services: Services, client, fake_wechat) -> MiniProgram:  # type: ignore[no-untyped-def]
    phone = MiniProgram(client, fake_wechat, device="agent-phone")
    await phone.login()
    await phone.bind("李明轩", "440106199406183318")  # the agent is a real-name resident too
    code = await agents.issue_activation_code(services, AGENT)
    await phone.post("/me/agent-activation", {"agent": AGENT, "activation_code": code})
    return phone


@pytest.mark.parametrize("viewport", [LANDSCAPE, PORTRAIT], ids=["landscape", "portrait"])
async def test_agent_signs_in_resident_authorises_by_card_and_agent_files(
    kiosk_agent: RunningAgent, services: Services, page_factory: PageFactory, client, fake_wechat,
    viewport: dict[str, int],
) -> None:
    tag = "portrait" if viewport is PORTRAIT else "landscape"
    await certificates.load_demo_certificates(services)
    phone = await agent_phone(services, client, fake_wechat)
    page = await page_factory(viewport)
    await page.goto(kiosk_agent.url + "/kiosk/agent")
    await page.wait_for_selector("#agent-qr svg")
    await screenshot(page, f"kiosk-agent-sign-in-{tag}")
    [code] = qrdecode.decode_bytes(await page.locator("#agent-qr").screenshot())
    assert code.startswith("YWK1:")

    # somebody else's phone (not an agent) cannot confirm
    stranger = MiniProgram(client, fake_wechat, device="stranger")
    await stranger.login()
    with pytest.raises(ApiError) as refused:
        await stranger.post("/agent/kiosk-sign-in", {"code": code})
    assert refused.value.status == 403

    confirmed = await phone.post("/agent/kiosk-sign-in", {"code": code})
    assert confirmed["kiosk"] == "测试 1 号机" and len(confirmed["confirmation_code"]) == 6
    wrong = "000000" if confirmed["confirmation_code"] != "000000" else "111111"
    await page.fill("#agent-digits", wrong)
    await page.click("#agent-sign-in button[type=submit]")
    assert "确认码不正确" in await page.inner_text("main")
    for digit in confirmed["confirmation_code"]:
        await page.click(f"#agent-sign-in .key[data-key='{digit}']")
    await page.click("#agent-sign-in button[type=submit]")
    await page.wait_for_selector("#agent-scope")
    banner = await page.inner_text("#session-banner")
    assert "代办员 " in banner and "请先读取居民身份证" in banner and "正在为" not in banner
    await page.check(f"#agent-scope input[value='{ITEM}']")
    await screenshot(page, f"kiosk-agent-scope-{tag}")
    await page.click("#agent-scope button[type=submit]")
    await page.wait_for_selector("#agent-card")
    await screenshot(page, f"kiosk-agent-card-{tag}")

    (kiosk_agent.state_dir / "id-card.json").write_text(json.dumps(RESIDENT, ensure_ascii=False), encoding="utf-8")
    await page.wait_for_selector("#agent-apply", timeout=15000)
    banner = await page.inner_text("#session-banner")
    assert "代办员 " in banner and "正在为 陈**（440104********2151） 办理" in banner
    text = await page.inner_text("body")
    assert RESIDENT["name"] not in text and RESIDENT["id_number"] not in text
    await page.check("#agent-apply input[value='社保卡刷卡']")
    await page.fill("#agent-apply input[name=phone]", "13800138000")
    # a notice published now waits: the half-filled form is not wiped (issue 11)
    from tests.test_kiosk_service_hall_browser import publish_notice

    await publish_notice(services, kiosk_agent, "代办期间发布的公告")
    await page.wait_for_selector("body[data-content-pending='1']")
    assert await page.input_value("#agent-apply input[name=phone]") == "13800138000"
    assert await page.is_checked("#agent-apply input[value='社保卡刷卡']")
    await screenshot(page, f"kiosk-agent-apply-{tag}")
    heights = await page.eval_on_selector_all("a.btn, button.btn, a.tile, label.option",
                                              "els => els.filter(e => e.offsetParent).map(e => e.offsetHeight)")
    assert min(heights) >= 60
    await page.click("#agent-apply button[type=submit]")
    await page.wait_for_selector("#agent-filed")
    await screenshot(page, f"kiosk-agent-filed-{tag}")
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0

    auth = await services.store["authorisations"].find_one({"agent": AGENT})
    assert auth["channel"] == "kiosk" and auth["items"] == [ITEM]
    app = await services.store["applications"].find_one({"agent": AGENT})
    assert app is not None and app["item"] == ITEM and app["status"] == "submitted"
    entry = await services.store["audit"].find_one({"subject": app["_id"], "actor.kind": "agent"})
    assert entry is not None and entry["on_behalf_of"] == app["applicant"]["index"]
    queue = await phone.get("/agent/queue")
    assert [a["id"] for a in queue["applications"]] == [app["_id"]]
