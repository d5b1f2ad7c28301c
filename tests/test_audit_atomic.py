"""No state change without its audit entry, and no 500 once the change is durable.

The database refusing writes after the change is made real with the server's own
``failCommand`` fail point (the embedded mongoeco server implements it, as MongoDB does);
the crash is a real ``kill -9`` of a real server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ROOT, Client, free_port
from tests.fixtures.certs import id_card_body
from tests.mobile_support import LI, SS_CARD, prepare, ss_form
from tests.support.fake_wechat import FakeWeChat
from tests.support.miniprogram import MiniProgram, jpeg_bytes
from yiwang import agents, audit, certificates
from yiwang.audit_anchor import AuditWatch
from yiwang.boot import open_services
from yiwang.config import load_config
from yiwang.runtime import Services
from yiwang.store import Store


@asynccontextmanager
async def inserts_refused(store: Store) -> AsyncIterator[None]:
    """Every insert fails at the database (updates still work) until the block ends."""
    await store.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": {"failCommands": ["insert"], "errorCode": 8}}
    )
    try:
        yield
    finally:
        await store.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def entries_for(store: Store, subject: str) -> list[str]:
    return [e["action"] async for e in store["audit"].find({"subject": subject}, sort=[("seq", 1)])]


@pytest.fixture
async def resident(services: Services, client: Client, fake_wechat: FakeWeChat) -> MiniProgram:
    cards = await prepare(services)
    mp = MiniProgram(client, fake_wechat)
    await mp.login()
    await mp.bind(*LI)
    mp.cards = cards  # type: ignore[attr-defined]
    return mp


async def test_a_submission_whose_audit_write_fails_is_answered_and_its_entry_completed_later(
    services: Services, resident: MiniProgram
) -> None:
    photo = await resident.upload(jpeg_bytes())
    refs = [
        {"material": "applicant_id_card", "certificate": resident.cards["李明轩"]},  # type: ignore[attr-defined]
        {"material": "photo", "upload": photo["id"]},
    ]
    draft = await resident.apply(SS_CARD, ss_form(*LI), refs, submit=False, expect=201)
    async with inserts_refused(services.store):  # the audit entry and the notice cannot be written
        submitted = await resident.post(
            f"/applications/{draft['id']}/submit", headers={"Idempotency-Key": uuid.uuid4().hex}, expect=200
        )
    assert submitted["status"] == "submitted"  # the change is durable: the answer says so, not 500
    stored = await services.store["applications"].find_one({"_id": draft["id"]})
    assert stored is not None and [p["action"] for p in stored["audit_pending"]] == ["application.submitted"]
    assert "application.submitted" not in await entries_for(services.store, draft["id"])
    await services.resources.get(AuditWatch).run_once()  # the schedule finishes it
    assert (await entries_for(services.store, draft["id"]))[-1] == "application.submitted"
    stored = await services.store["applications"].find_one({"_id": draft["id"]})
    assert stored is not None and stored["audit_pending"] == []
    assert await audit.verify_chain(services.store) == (True, None)


async def test_a_revocation_and_an_authorisation_withdrawal_keep_their_entries_through_a_failed_audit_write(
    services: Services,
) -> None:
    await prepare(services, agents=True)
    from tests.fixtures.certs import holder_index

    issued = await certificates.issue(services, "gz-psb", id_card_body("440117197810050197", "黄志强"),
                                      idempotency_key=uuid.uuid4().hex)
    cert = issued.certificate
    resident_index = holder_index(services, LI[1])
    agent_code = (await services.store["agents"].find_one({}))["_id"]  # type: ignore[index]
    today = audit.utcnow().date()
    grant = await agents.grant_authorisation(services, resident_index, agent_code, [SS_CARD],
                                             (today.replace(day=28) if today.day < 28 else today).isoformat())
    async with inserts_refused(services.store):
        revoked = await certificates.change_status(services, "gz-psb", cert["identifier"], "revoked", "测试撤销")
        withdrawn = await agents.revoke_authorisation(services, resident_index, grant["id"])
    assert revoked["status"] == "revoked" and withdrawn["status"] == "revoked"
    assert "certificate.revoked" not in await entries_for(services.store, cert["_id"])
    # a crash now: the next start-up's reconciler completes both from the markers
    assert await audit.reconcile(services.store) == 2
    assert (await entries_for(services.store, cert["_id"]))[-1] == "certificate.revoked"
    assert (await entries_for(services.store, grant["id"]))[-1] == "authorisation.revoke"
    assert await audit.reconcile(services.store) == 0  # nothing twice
    assert await audit.verify_chain(services.store) == (True, None)


# ---- kill -9 under concurrent submissions ----------------------------------------------------


def _env(data_dir: Path, port: int, fake: FakeWeChat) -> dict[str, str]:
    return dict(
        os.environ,
        DATA_DIR=str(data_dir),
        PORT=str(port),
        DEMO_DATA="0",
        LOG_LEVEL="WARNING",
        WORKERS="2",
        WECHAT_APPID=fake.appid,
        WECHAT_SECRET=fake.secret,
        WECHAT_API_BASE=fake.url,
    )


async def _serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the server and its database die together
    )
    base = f"http://127.0.0.1:{env['PORT']}"
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "server exited early"
            try:
                async with session.get(base + "/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    process.kill()
    raise AssertionError("server did not become ready")


@pytest.mark.slow
async def test_every_application_stored_before_a_kill_9_has_its_audit_entry_after_restart(
    tmp_path: Path, fake_wechat: FakeWeChat
) -> None:
    port = free_port()
    env = _env(tmp_path, port, fake_wechat)
    # The catalogue and the residents, written into the server's own database file beforehand.
    setup: Services = await open_services(load_config(env))
    try:
        cards = await prepare(setup)
    finally:
        await setup.close()
    process = await _serve(env)
    try:
        async with aiohttp.ClientSession() as session:
            mp = MiniProgram(Client(f"http://127.0.0.1:{port}", session), fake_wechat)
            await mp.login()
            await mp.bind(*LI)
            photo = await mp.upload(jpeg_bytes())
            refs = [
                {"material": "applicant_id_card", "certificate": cards["李明轩"]},
                {"material": "photo", "upload": photo["id"]},
            ]
            answered: list[Any] = []

            async def submit() -> None:
                with contextlib.suppress(aiohttp.ClientError, AssertionError):  # cut off by the kill
                    answered.append(await mp.apply(SS_CARD, ss_form(*LI), refs, expect=201))

            tasks = [asyncio.create_task(submit()) for _ in range(80)]
            deadline = time.monotonic() + 20
            while len(answered) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            os.killpg(process.pid, signal.SIGKILL)  # mid-flight
            process.wait(timeout=10)
            await asyncio.gather(*tasks)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert answered, "nothing was submitted before the kill"
    await asyncio.sleep(0.5)  # the old database child is gone
    process = await _serve(env)  # the restart completes what the kill left pending
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait, 30)
    check: Services = await open_services(load_config(env))
    try:
        stored = [d async for d in check.store["applications"].find({}, projection={"_id": 1, "audit_pending": 1})]
        audited = {e["subject"] async for e in check.store["audit"].find({"action": "application.submitted"})}
        chain = await audit.verify_chain(check.store)
    finally:
        await check.close()
    assert len(stored) >= len(answered)
    assert [d["_id"] for d in stored if d["_id"] not in audited] == []  # every stored application is audited
    assert [d["_id"] for d in stored if d.get("audit_pending")] == []
    assert chain == (True, None)
