"""WeChat's message push: the URL check and events are accepted only with WeChat's signature,
events are decrypted with the configured key, and a content-security result is recorded."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets

from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from wechatpy.crypto import PrpCrypto, _get_signature

from web.app import make_app
from yiwang.runtime import Services

TOKEN = "yiwang-push-token"


def _aes_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()[:43]


async def _serve(services: Services, aes_key: str):  # type: ignore[no-untyped-def]
    services.config = dataclasses.replace(services.config, wechat_push_token=TOKEN, wechat_push_aes_key=aes_key)
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(services))
    server.add_sockets([sock])
    return server, f"http://127.0.0.1:{port}"


def _push(aes_key: str, appid: str, event: dict) -> tuple[dict[str, str], bytes]:  # type: ignore[type-arg]
    key = base64.b64decode(aes_key + "=")
    encrypt = PrpCrypto(key).encrypt(json.dumps(event), appid).decode()
    timestamp, nonce = "1764640000", "n" + secrets.token_hex(4)
    signature = _get_signature(TOKEN, timestamp, nonce, encrypt)
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "encrypt_type": "aes"}
    return query, json.dumps({"ToUserName": "gh_x", "Encrypt": encrypt}).encode()


async def test_the_url_check_and_events_need_wechats_signature(services: Services, client) -> None:  # type: ignore[no-untyped-def]
    status, body, _ = await client.get("/api/wechat/push?signature=x&timestamp=1&nonce=2&echostr=e")
    assert status == 404 and body["error"]["code"] == "wechat.push_disabled"  # off until configured
    aes_key = _aes_key()
    server, base = await _serve(services, aes_key)
    try:
        timestamp, nonce = "1764640000", "abc"
        # WeChat's URL-check signature: SHA-1 of the sorted token, timestamp and nonce (its contract, not ours).
        signature = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce])).encode()).hexdigest()
        async with client.session.get(base + "/api/wechat/push", params={
            "signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": "echo-123"}) as r:  # fmt: skip
            assert r.status == 200 and await r.text() == "echo-123"
        async with client.session.get(base + "/api/wechat/push", params={
            "signature": "0" * 40, "timestamp": timestamp, "nonce": nonce, "echostr": "echo-123"}) as r:  # fmt: skip
            assert r.status == 403 and (await r.json())["error"]["code"] == "wechat.push_signature"

        event = {"ToUserName": "gh_x", "FromUserName": "o1", "CreateTime": 1764640000, "MsgType": "event",
                 "Event": "wxa_media_check", "appid": services.config.wechat_appid, "trace_id": "trace-1",
                 "version": 2, "result": {"suggest": "risky", "label": 20002}}  # fmt: skip
        query, payload = _push(aes_key, services.config.wechat_appid, event)
        async with client.session.post(base + "/api/wechat/push", params=query, data=payload) as r:
            assert r.status == 200 and await r.text() == "success"
        recorded = await services.store["media_checks"].find_one({"_id": "trace-1"})
        assert recorded is not None and recorded["suggest"] == "risky"

        forged = dict(query, msg_signature="f" * 40)
        async with client.session.post(base + "/api/wechat/push", params=forged, data=payload) as r:
            assert r.status == 403
        query, payload = _push(aes_key, "wx-another-app", dict(event, trace_id="trace-2"))
        async with client.session.post(base + "/api/wechat/push", params=query, data=payload) as r:
            assert r.status == 403  # encrypted for another appid
        async with client.session.post(base + "/api/wechat/push", params=query, data=b"not json") as r:
            assert r.status == 400
        assert await services.store["media_checks"].count_documents({}) == 1
    finally:
        server.stop()
        await server.close_all_connections()
