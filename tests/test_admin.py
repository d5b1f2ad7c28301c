"""python -m yiwang.admin: what an operator does without writing Python, each change audited."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from yiwang import admin, issuer_signing
from yiwang.crypto import SM2Signer
from yiwang.store import Store

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, mongo_uri: str, tmp_path: Path) -> str:
    db = "t_admin_" + secrets.token_hex(4)
    for name, value in {
        "MONGODB_URI": mongo_uri, "MONGODB_DB": db, "DATA_DIR": str(tmp_path), "DEMO_DATA": "0",
        "PII_KEY": secrets.token_hex(16), "BLIND_INDEX_KEY": secrets.token_hex(32),
        "COOKIE_SECRET": secrets.token_hex(16), "WECHAT_SECRET": secrets.token_hex(16), "USER": "ops-li",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    return db


def read(mongo_uri: str, db: str, collection: str, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        store = Store.connect(mongo_uri, db)
        try:
            return [d async for d in store[collection].find(query or {})]
        finally:
            await store.close()

    return asyncio.run(go())


def test_an_operator_manages_accounts_credentials_halls_and_the_catalogue(
    operator_env: str, mongo_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = operator_env

    def run(*argv: str) -> tuple[int, str, str]:
        code = admin.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run("users", "create", "--username", "gz_ops", "--role", "city", "--region", "440100",
               "--password", PASSWORD)[0] == 0  # fmt: skip
    code, _, err = run("users", "create", "--username", "gz_ops", "--role", "city", "--password", PASSWORD)
    assert code == 1 and "用户名已存在" in err
    assert "gz_ops\t市级管理员\t正常" in run("users", "list")[1]
    assert run("users", "disable", "gz_ops")[0] == 0
    [user] = read(mongo_uri, db, "console_users")
    assert user["disabled"] is True and PASSWORD not in json.dumps(user, default=str)
    assert run("users", "reset-totp", "nobody")[0] == 1

    code, out, _ = run("credentials", "issue", "--department", "gz-psb", "--label", "证照系统")
    assert code == 0
    credential_id = out.split("\n", 1)[0].rsplit("：", 1)[-1].strip()
    private_pem = out[out.index("-----BEGIN PRIVATE KEY-----") :].strip().encode()  # printed once
    [credential] = read(mongo_uri, db, "department_credentials")
    assert credential["_id"] == credential_id and credential["kind"] == "issuer"
    signer = SM2Signer.from_pem(private_pem)  # the printed key is the pair of the stored public key
    assert credential["public_key"] == signer.public_key_raw().hex()
    assert b"PRIVATE" not in json.dumps(credential, default=str).encode()  # only the public key is stored
    headers = issuer_signing.sign_request(private_pem, credential_id, "GET", "/api/issuer/v1/certificates/x", b"")
    assert len(headers["X-Yiwang-Signature"]) > 100
    own_key = tmp_path / "dept.pub.pem"
    own_key.write_text(SM2Signer.generate().public_pem())
    code, out, _ = run("credentials", "issue", "--department", "gz-psb", "--public-key", str(own_key))
    assert code == 0 and "PRIVATE KEY" not in out  # the department made its own key: nothing secret to print
    code, out, _ = run("credentials", "issue", "--department", "gz-psb", "--kind", "window")
    token = out.strip().rsplit("：", 1)[-1]
    window = read(mongo_uri, db, "department_credentials", {"kind": "window"})[0]
    assert token.startswith(window["_id"] + ".")
    assert token.split(".", 1)[1] not in json.dumps(window, default=str)  # only its digest is stored
    assert run("credentials", "revoke", credential["_id"])[0] == 0
    assert read(mongo_uri, db, "department_credentials", {"_id": credential_id})[0]["revoked"] is True
    assert run("credentials", "revoke", credential["_id"])[0] == 1  # already revoked

    code, _, err = run("halls", "create", "--code", "Bad Code", "--name", "x", "--city", "123")
    assert code == 1 and "code" in err and "city" in err
    assert read(mongo_uri, db, "halls") == []
    assert run("halls", "create", "--code", "gz-hp-center", "--name", "广州市黄埔区政务服务中心",
               "--city", "440100")[0] == 0  # fmt: skip
    code, out, _ = run("enrolment-code", "--hall", "gz-hp-center", "--label", "大厅一号机")
    assert code == 0 and len(read(mongo_uri, db, "enrolment_codes")) == 1

    asyncio.run(_seed_catalogue(mongo_uri, db))
    exported = tmp_path / "catalogue.json"
    assert run("catalog", "export", str(exported))[0] == 0
    data = json.loads(exported.read_text(encoding="utf-8"))
    assert len(data["items"]) == 58 and any(h["code"] == "gz-hp-center" for h in data["halls"])
    data["items"][0]["note"] = "由运维导入的说明"
    broken = dict(data, items=[*data["items"], {"code": data["items"][1]["code"], "name": "重复"}])
    (tmp_path / "broken.json").write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    code, _, err = run("catalog", "import", str(tmp_path / "broken.json"))
    assert code == 1 and "重复" in err
    assert all(i["version"] == 1 for i in read(mongo_uri, db, "items"))  # nothing written
    exported.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, out, _ = run("catalog", "import", str(exported))
    assert code == 0 and "items 变更 1 项" in out
    [item] = read(mongo_uri, db, "items", {"_id": data["items"][0]["code"]})
    assert item["version"] == 2 and item["note"] == "由运维导入的说明"

    assert run("audit", "verify")[1].strip() == "审计链完整"
    actions = {e["action"]: e for e in read(mongo_uri, db, "audit")}
    assert {"console.user_created", "console.user_disabled", "credential.issued", "credential.revoked",
            "hall.created", "device.enrolment_code_created", "catalog.imported"} <= set(actions)  # fmt: skip
    assert actions["credential.issued"]["actor"]["id"] == "ops-li"


async def _seed_catalogue(mongo_uri: str, db: str) -> None:
    from yiwang.catalog import load_catalog_files

    store = Store.connect(mongo_uri, db)
    try:
        await load_catalog_files(store)
    finally:
        await store.close()


def test_help_is_in_chinese_and_english(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        admin.main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "管理后台账号" in text and "console accounts" in text
