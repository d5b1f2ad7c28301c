"""Production is not a demo: server.py refuses demo data, weak secrets, placeholders and the demo
identity verifier, naming each bad setting in Chinese and English without a traceback."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from yiwang import console_accounts
from yiwang.config import ConfigError, load_config
from yiwang.errors import NotAuthenticated
from yiwang.runtime import Services
from yiwang.store import Store


def production_env(tmp_path: Path, mongo_uri: str, **changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEMO_DATA", "PUBLIC_URL", "IDENTITY_VERIFIER")}
    env.update(
        YIWANG_ENV="production",
        DATA_DIR=str(tmp_path / "var"),
        PORT=str(free_port()),
        MONGODB_URI=mongo_uri,
        MONGODB_DB="t_prod_" + secrets.token_hex(4),
        PUBLIC_URL="https://yiwang.example.gov.cn",
        PII_KEY=secrets.token_hex(16),
        BLIND_INDEX_KEY=secrets.token_hex(32),
        AUDIT_KEY=secrets.token_hex(32),
        COOKIE_SECRET=secrets.token_urlsafe(32),
        WECHAT_APPID="wx1234567890abcdef",
        WECHAT_SECRET=secrets.token_hex(16),
        WECHAT_API_BASE="http://127.0.0.1:9",  # nothing there: the template check is off the start-up path
        IDENTITY_VERIFIER="off",
        LOG_LEVEL="WARNING",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_refused(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "配置错误 / configuration error" in result.stderr
    return result.stderr


def test_production_refuses_demo_data_weak_secrets_placeholders_and_names_each(tmp_path: Path, mongo_uri: str) -> None:
    env = production_env(
        tmp_path, mongo_uri,
        DEMO_DATA="1", COOKIE_SECRET="x", WECHAT_APPID=None, PUBLIC_URL=None, LOG_LEVEL="LOUD",
        IDENTITY_VERIFIER=None, PII_KEY="00" * 16,
    )  # fmt: skip
    err = start_refused(env)
    lines = {line.split(":", 1)[0].strip(" -"): line for line in err.splitlines() if line.startswith("  - ")}
    assert set(lines) == {
        "DEMO_DATA", "COOKIE_SECRET", "WECHAT_APPID", "PUBLIC_URL", "LOG_LEVEL", "IDENTITY_VERIFIER", "PII_KEY"
    }  # fmt: skip
    assert "演示数据" in lines["DEMO_DATA"] and "demo data" in lines["DEMO_DATA"]
    assert "32" in lines["COOKIE_SECRET"]
    assert "DEBUG | INFO" in lines["LOG_LEVEL"]
    assert not (tmp_path / "var" / "secrets.env").exists()  # nothing generated in production


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"IDENTITY_VERIFIER": "demo"}, "IDENTITY_VERIFIER"),
        ({"WECHAT_APPID": "wx0000000000000000"}, "WECHAT_APPID"),
        ({"WECHAT_SECRET": "a" * 32}, "WECHAT_SECRET"),
        ({"METRICS_TOKEN": "token"}, "METRICS_TOKEN"),
        ({"DEMO_DATA": "true"}, "DEMO_DATA"),
    ],
)
def test_each_production_setting_is_checked(
    tmp_path: Path, mongo_uri: str, changes: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(production_env(tmp_path, mongo_uri, **changes))
    assert [name for name, _, _ in caught.value.problems] == [named]


def test_a_bad_log_level_is_a_message_naming_it_not_a_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, DATA_DIR=str(tmp_path), PORT=str(free_port()), LOG_LEVEL="LOUD", DEMO_DATA="0")
    err = start_refused(env)
    assert "LOG_LEVEL" in err and "DEBUG | INFO" in err


async def test_production_starts_without_demo_data_or_demo_accounts(tmp_path: Path, mongo_uri: str) -> None:
    env = production_env(tmp_path, mongo_uri)
    assert load_config(env).demo_data is False  # DEMO_DATA unset: off in production
    server = subprocess.Popen(
        [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "production server did not become ready"
            time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    store = Store.connect(mongo_uri, env["MONGODB_DB"])
    try:
        for collection in ("console_users", "residents", "certificates", "items"):
            assert await store[collection].count_documents({}) == 0, collection
    finally:
        await store.client.drop_database(env["MONGODB_DB"])
        await store.close()


async def test_in_production_a_published_demo_password_never_logs_in(services: Services) -> None:
    """Even in a database that was once loaded with demo data (the accounts are still there)."""
    await console_accounts.load_demo_console_users(services)
    demo = json.loads(console_accounts.DEMO_FILE.read_text(encoding="utf-8"))["console_users"][0]
    user = await console_accounts.verify_password(
        services.store, services.offload, demo["username"], demo["password"], "198.51.100.7"
    )
    assert user.username == demo["username"]  # development: the demo account works
    with pytest.raises(NotAuthenticated):
        await console_accounts.verify_password(
            services.store, services.offload, demo["username"], demo["password"], "198.51.100.8",
            refuse_demo_passwords=True,
        )  # fmt: skip
