"""Complaints carry the place they concern (from the application, or a department / hall
of the catalogue), the console's figures count them there, and department staff answer
them; the resident sees the answer and whether it came on time."""

from __future__ import annotations

import datetime as dt
import json

from tests.mobile_support import DATA, LI, SS_CARD, WANG, prepare, ss_form
from tests.support.miniprogram import MiniProgram, Staff, jpeg_bytes
from yiwang import figures
from yiwang.accounts import issue_staff_token
from yiwang.catalog import bump_version
from yiwang.runtime import Services
from yiwang.timeutil import local_today

MORE_DEPARTMENTS = ("gd-hrss", "sz-psb")
HALLS = ("gz-th-center", "sz-ft-center")


async def _places(services: Services) -> None:
    """A provincial and a Shenzhen department, a Guangzhou and a Shenzhen hall, on top of prepare()."""
    for dept in json.loads((DATA / "departments.json").read_text(encoding="utf-8")):
        if dept["code"] in MORE_DEPARTMENTS:
            await services.store["departments"].insert_one({"_id": dept["code"], **dept})
    for hall in json.loads((DATA / "halls.json").read_text(encoding="utf-8")):
        if hall["code"] in HALLS:
            await services.store["halls"].insert_one({"_id": hall["code"], **hall})
    await bump_version(services.store)
    services.catalog.invalidate()


def _complaint(subject: str, **place: str) -> dict[str, str]:
    return {"kind": "complaint", "subject": subject, "content": "具体情况：等候时间过长，无人解释。", **place}


async def _resident(services: Services, client, fake_wechat, person=LI) -> MiniProgram:  # type: ignore[no-untyped-def]
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*person)
    return mp


async def test_a_complaint_takes_its_place_from_the_application_or_the_catalogue(services, client, fake_wechat):
    cards = await prepare(services)
    await _places(services)
    li = await _resident(services, client, fake_wechat)
    photo = await li.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": cards["李明轩"]},
        {"material": "photo", "upload": photo["id"]},
    ]
    app = await li.apply(SS_CARD, ss_form(*LI), refs)

    about_app = await li.post("/complaints", _complaint("社保卡办理太慢", application=app["id"]), expect=201)
    assert about_app["place"] == {
        "department": "gz-hrss",
        "department_name": "广州市人力资源和社会保障局",
        "hall": None,
        "hall_name": None,
        "city": "440100",
    }
    about_hall = await li.post("/complaints", _complaint("大厅排队太久", hall="gz-th-center"), expect=201)
    assert about_hall["place"]["hall"] == "gz-th-center" and about_hall["place"]["city"] == "440100"
    about_dept = await li.post("/complaints", _complaint("窗口态度差", department="sz-psb"), expect=201)
    assert about_dept["place"]["department"] == "sz-psb" and about_dept["place"]["city"] == "440300"
    provincial = await li.post("/complaints", _complaint("政策解释不清", department="gd-hrss"), expect=201)
    assert provincial["place"]["city"] is None  # a provincial department counts at province level
    both = await li.post(
        "/complaints", _complaint("大厅里的公安窗口", department="gz-psb", hall="gz-th-center"), expect=201
    )
    assert both["place"]["department"] == "gz-psb" and both["place"]["hall"] == "gz-th-center"
    general = await li.post("/complaints", _complaint("建议增加夜间服务"), expect=201)
    assert general["place"]["city"] is None and general["place"]["department"] is None

    stored = await services.store["complaints"].count_documents({})
    for body, fields in [
        (_complaint("不存在的部门", department="nowhere"), {"department"}),
        (_complaint("不存在的大厅", hall="nowhere"), {"hall"}),
        (_complaint("别人的申请", application="f" * 32), {"application"}),
        (_complaint("部门与申请不符", application=app["id"], department="gz-psb"), {"department"}),
        (_complaint("跨城市", department="sz-psb", hall="gz-th-center"), {"hall"}),
        ({**_complaint("类型错误"), "department": ["gz-psb"], "hall": 7}, {"department", "hall"}),
    ]:
        refused = await li.post("/complaints", body, expect=400)
        assert refused["error"]["code"] == "complaint.invalid" and set(refused["error"]["fields"]) == fields
    assert await services.store["complaints"].count_documents({}) == stored  # nothing half-written


async def test_figures_count_open_and_overdue_complaints_where_they_belong(services, client, fake_wechat):
    await prepare(services)
    await _places(services)
    li = await _resident(services, client, fake_wechat)
    th_hall = await li.post("/complaints", _complaint("大厅排队太久", hall="gz-th-center"), expect=201)
    await li.post("/complaints", _complaint("人社窗口", department="gz-hrss"), expect=201)
    await li.post("/complaints", _complaint("深圳公安", department="sz-psb"), expect=201)
    await li.post("/complaints", _complaint("省人社厅", department="gd-hrss"), expect=201)
    await li.post("/complaints", _complaint("一般建议"), expect=201)
    # the Tianhe hall complaint is past its deadline
    await services.store["complaints"].update_one({"_id": th_hall["id"]}, {"$set": {"answer_due": "2020-01-01"}})

    snap = await services.catalog.snapshot()
    period = figures.period("30d")

    async def counts(kind: str, code: str) -> dict[str, int]:
        scope = figures.scope_for(kind, code, snap.halls, snap.departments, {})
        return await figures.complaints(services.store, scope, period)

    assert await counts("province", "440000") == {"open": 4, "overdue": 1, "answered": 0, "open_total": 5}
    assert (await counts("city", "440100"))["open_total"] == 2  # Tianhe hall + Guangzhou HRSS
    assert (await counts("city", "440100"))["overdue"] == 1
    assert (await counts("city", "440300"))["open_total"] == 1
    assert await counts("hall", "gz-th-center") == {"open": 0, "overdue": 1, "answered": 0, "open_total": 1}
    assert (await counts("hall", "sz-ft-center"))["open_total"] == 0
    assert (await counts("department", "gz-hrss"))["open_total"] == 1
    assert (await counts("department", "gd-hrss"))["open_total"] == 1
    assert (await counts("department", "gz-psb"))["open_total"] == 0

    # every place filter is on an indexed field, with the time range
    indexes = await services.store["complaints"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert {("city", "created_at"), ("department", "created_at"), ("hall", "created_at")} <= keys


async def test_department_staff_answer_and_the_resident_sees_whether_it_was_on_time(services, client, fake_wechat):
    await prepare(services)
    await _places(services)
    li = await _resident(services, client, fake_wechat)
    wang = await _resident(services, client, fake_wechat, WANG)
    early = await li.post("/complaints", _complaint("人社窗口态度差", department="gz-hrss"), expect=201)
    late = await li.post("/complaints", _complaint("人社迟迟不答复", department="gz-hrss"), expect=201)
    other = await wang.post("/complaints", _complaint("公安窗口", department="gz-psb"), expect=201)
    yesterday = (local_today() - dt.timedelta(days=1)).isoformat()
    await services.store["complaints"].update_one({"_id": late["id"]}, {"$set": {"answer_due": yesterday}})
    assert (await li.get(f"/complaints/{late['id']}"))["overdue"] is True

    hrss = Staff(client, await issue_staff_token(services, "gz-hrss", "complaints-desk"))
    listed = (await hrss.call("GET", "/staff/complaints"))["complaints"]
    assert {c["id"] for c in listed} == {early["id"], late["id"]}  # only its own department
    assert all("content" not in c for c in listed)
    assert (await hrss.call("GET", "/staff/complaints", params={"status": "answered"}))["complaints"] == []
    bad_status = await hrss.call("GET", "/staff/complaints", params={"status": "x"}, expect=400)
    assert bad_status["error"]["code"] == "complaint.status_invalid"
    read = await hrss.call("GET", f"/staff/complaints/{early['id']}")
    assert read["content"] == "具体情况：等候时间过长，无人解释。"
    await hrss.call("GET", f"/staff/complaints/{other['id']}", expect=404)  # another department's

    empty = await hrss.call("POST", f"/staff/complaints/{early['id']}/answer", json={"answer": " "}, expect=400)
    assert empty["error"]["code"] == "complaint.answer_invalid" and "answer" in empty["error"]["fields"]
    assert (await li.get(f"/complaints/{early['id']}"))["status"] == "open"  # refused input changed nothing
    answered = await hrss.call(
        "POST", f"/staff/complaints/{early['id']}/answer", json={"answer": "已约谈窗口人员并整改，感谢监督。"}
    )
    assert answered["status"] == "answered" and answered["answered_on_time"] is True
    again = await hrss.call("POST", f"/staff/complaints/{early['id']}/answer", json={"answer": "再答一次"}, expect=409)
    assert again["error"]["code"] == "complaint.already_answered"
    await hrss.call("POST", f"/staff/complaints/{other['id']}/answer", json={"answer": "越权答复"}, expect=404)
    await hrss.call("POST", f"/staff/complaints/{late['id']}/answer", json={"answer": "已核实处理，抱歉答复延迟。"})

    mine = {c["id"]: c for c in (await li.get("/complaints"))["complaints"]}
    assert mine[early["id"]]["answer"] == "已约谈窗口人员并整改，感谢监督。"
    assert mine[early["id"]]["answered_at"] and mine[early["id"]]["answered_on_time"] is True
    assert mine[late["id"]]["answered_on_time"] is False and mine[late["id"]]["overdue"] is False
    assert (await wang.get(f"/complaints/{other['id']}"))["answer"] is None

    forbidden = await li.post(f"/staff/complaints/{other['id']}/answer", {"answer": "市民冒充"}, expect=403)
    assert forbidden["error"]["code"] == "auth.staff_only"

    stored = await services.store["complaints"].find_one({"_id": early["id"]})
    assert "感谢监督" not in str(stored)  # the answer is sealed like the complaint
    actions = [e["action"] async for e in services.store["audit"].find({"subject": early["id"]}, sort=[("seq", 1)])]
    assert actions == ["complaint.file", "complaint.read", "complaint.answer"]
    period = figures.period("30d")
    dept = figures.scope_for("department", "gz-hrss", {}, {"gz-hrss": {"region": "440100"}}, {})
    assert await figures.complaints(services.store, dept, period) == {
        "open": 0,
        "overdue": 0,
        "answered": 2,
        "open_total": 0,
    }
