"""The one settings object, read from the environment and validated at start-up.

Each setting is declared once with its default and a one-line help; the README
table is generated from :data:`SETTINGS` (``python -m yiwang.config``).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from yiwang.errors import InvalidInput


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("YIWANG_ENV", "development", "development | production; production refuses generated secrets"),
    Setting("HOST", "127.0.0.1", "address the HTTP server listens on"),
    Setting("PORT", "8000", "HTTP port"),
    Setting("PUBLIC_URL", "", "external base URL used in QR codes and links (default http://HOST:PORT)"),
    Setting("MONGODB_URI", "", "MongoDB URI; empty starts the embedded mongoeco server on DATA_DIR"),
    Setting("MONGODB_DB", "yiwang", "database name"),
    Setting("DATA_DIR", "./var", "embedded database file, generated secrets, uploads"),
    Setting("EMBEDDED_ENGINE", "sqlite", "embedded engine: sqlite (file in DATA_DIR) or memory"),
    Setting("DEMO_DATA", "1", "load the demo catalogue, residents and certificates on start (idempotent)"),
    Setting("LOG_LEVEL", "INFO", "logging level"),
    Setting("WORKERS", "4", "threads for blocking work (Pillow, pyzbar, WeChat calls)"),
    Setting("PROCESSES", "1", "server processes sharing PORT (SO_REUSEPORT) and one database; 0 = one per core"),
    Setting("SHUTDOWN_GRACE_SECONDS", "10", "how long in-flight requests may finish after SIGTERM"),
    Setting("PII_KEY", None, "hex 16-byte SM4 key for personal data at rest", secret=True),
    Setting(
        "PII_KEYS_PREVIOUS", "",
        "retired PII keys still readable (hex, comma-separated) while a background job re-seals their data",
    ),
    Setting("BLIND_INDEX_KEY", None, "hex 32-byte HMAC-SM3 key for blind indexes", secret=True),
    Setting("COOKIE_SECRET", None, "secret for signed cookies (console, kiosk sessions)", secret=True),
    Setting("WECHAT_APPID", "wx0000000000000000", "mini-program appid"),
    Setting("WECHAT_SECRET", None, "mini-program app secret", secret=True),
    Setting("WECHAT_API_BASE", "https://api.weixin.qq.com", "WeChat API base URL (tests point it at a fake)"),
    Setting("AUDIT_KEY", None, "hex 32-byte HMAC-SM3 key of the audit chain, derives the checkpoint SM2 key",
            secret=True),
    Setting("AUDIT_CHECKPOINTS", "", "signed audit checkpoints, append-only (DATA_DIR/audit/checkpoints.jsonl)"),
    Setting("AUDIT_VERIFY_SECONDS", "60", "how often the audit trail is verified and a checkpoint written"),
    Setting(
        "WECHAT_TEMPLATES", "",
        "JSON: subscribe-message templates by name, {name: {id, keywords: {field: keyword}}}; empty: built-in",
    ),
    Setting("WECHAT_MINIPROGRAM_STATE", "formal", "subscribe messages open this version: formal | trial | developer"),
    Setting("WECHAT_PUSH_TOKEN", "", "message push (消息推送) Token; empty: /api/wechat/push is off"),
    Setting("WECHAT_PUSH_AES_KEY", "", "message push EncodingAESKey (43 characters, safe mode)"),
    Setting("METRICS_TOKEN", "", "bearer token for /metrics from other hosts; empty: /metrics answers loopback only"),
    Setting("WECHAT_LANG", "zh_CN", "language of subscribe messages: zh_CN | en_US | zh_HK | zh_TW"),
    Setting("TRUSTED_PROXIES", "", "CIDRs of reverse proxies whose X-Forwarded-For / X-Real-IP are believed"),
)

_HEX_LENGTHS = {"PII_KEY": 16, "BLIND_INDEX_KEY": 32, "AUDIT_KEY": 32}


@dataclass(frozen=True)
class Config:
    env: str
    host: str
    port: int
    public_url: str
    mongodb_uri: str
    mongodb_db: str
    data_dir: Path
    embedded_engine: str
    demo_data: bool
    log_level: str
    workers: int
    shutdown_grace_seconds: float
    pii_key: bytes = field(repr=False)
    blind_index_key: bytes = field(repr=False)
    cookie_secret: str = field(repr=False)
    wechat_appid: str = ""
    wechat_secret: str = field(default="", repr=False)
    wechat_api_base: str = ""
    audit_key: bytes = field(default=b"", repr=False)
    audit_checkpoints: Path = Path("audit/checkpoints.jsonl")
    audit_verify_seconds: int = 60
    wechat_templates: Mapping[str, Any] = field(default_factory=dict)
    pii_keys_previous: tuple[bytes, ...] = field(default=(), repr=False)
    wechat_miniprogram_state: str = "formal"
    wechat_lang: str = "zh_CN"
    metrics_token: str = field(default="", repr=False)
    processes: int = 1
    wechat_push_token: str = field(default="", repr=False)
    wechat_push_aes_key: str = field(default="", repr=False)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded(self) -> bool:
        return not self.mongodb_uri


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("config.invalid", f"配置项 {name} 必须是整数") from None
    if not low <= value <= high:
        raise InvalidInput("config.invalid", f"配置项 {name} 超出范围 {low}–{high}")
    return value


def _networks(name: str, raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks: list[IPv4Network | IPv6Network] = []
    for part in raw.replace(";", ",").split(","):
        if part.strip():
            try:
                networks.append(ip_network(part.strip(), strict=False))
            except ValueError:
                message = f"配置项 {name} 中的 {part.strip()!r} 不是 IP 地址或网段"
                raise InvalidInput("config.invalid", message) from None
    return tuple(networks)


def _secret_file(data_dir: Path) -> Path:
    return data_dir / "secrets.env"


def _generated_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for development: generated once, kept in DATA_DIR with 0600."""
    path = _secret_file(data_dir)
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    wanted: dict[str, Callable[[], str]] = {
        "PII_KEY": lambda: secrets.token_hex(16),
        "BLIND_INDEX_KEY": lambda: secrets.token_hex(32),
        "COOKIE_SECRET": lambda: secrets.token_urlsafe(32),
        "WECHAT_SECRET": lambda: secrets.token_hex(16),
        "AUDIT_KEY": lambda: secrets.token_hex(32),
    }
    missing = {k: make() for k, make in wanted.items() if k not in values}
    if missing:
        values.update(missing)
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as out:
            out.write("# Generated development secrets. Never used in production.\n")
            for key, value in values.items():
                out.write(f"{key}={value}\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return values


def _previous_keys(value: str, current: bytes) -> tuple[bytes, ...]:
    keys: list[bytes] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            key = bytes.fromhex(part)
        except ValueError:
            key = b""
        if len(key) != _HEX_LENGTHS["PII_KEY"]:
            raise InvalidInput("config.invalid", "PII_KEYS_PREVIOUS 中的每个密钥必须是 16 字节的十六进制")
        if key == current:
            raise InvalidInput("config.invalid", "PII_KEYS_PREVIOUS 不能包含当前的 PII_KEY")
        keys.append(key)
    return tuple(keys)


def _aes_key(value: str) -> str:
    if value and (len(value) != 43 or not value.isalnum()):
        raise InvalidInput(
            "config.invalid", "WECHAT_PUSH_AES_KEY 必须是 43 位字母或数字（微信后台生成的 EncodingAESKey）"
        )
    return value


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput("config.invalid", f"{name} 只能是 " + " | ".join(allowed))
    return value


def _json_object(name: str, value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise InvalidInput("config.invalid", f"{name} 不是有效的 JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidInput("config.invalid", f"{name} 必须是 JSON 对象")
    return parsed


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build and validate the config; raises InvalidInput naming the bad setting."""
    env = dict(os.environ if environ is None else environ)
    raw = {s.name: env.get(s.name) or s.default for s in SETTINGS}
    mode = raw["YIWANG_ENV"] or "development"
    if mode not in ("development", "production"):
        raise InvalidInput("config.invalid", "YIWANG_ENV 只能是 development 或 production")
    data_dir = Path(raw["DATA_DIR"] or "./var").resolve()
    missing_secrets = [s.name for s in SETTINGS if s.secret and not raw[s.name]]
    if missing_secrets:
        if mode == "production":
            raise InvalidInput("config.missing_secret", "生产环境必须配置密钥：" + ", ".join(missing_secrets))
        generated = _generated_secrets(data_dir)
        for name in missing_secrets:
            raw[name] = generated[name]
    for name, length in _HEX_LENGTHS.items():
        try:
            if len(bytes.fromhex(raw[name] or "")) != length:
                raise ValueError
        except ValueError:
            raise InvalidInput("config.invalid", f"{name} 必须是 {length} 字节的十六进制") from None
    engine = raw["EMBEDDED_ENGINE"] or "sqlite"
    if engine not in ("sqlite", "memory"):
        raise InvalidInput("config.invalid", "EMBEDDED_ENGINE 只能是 sqlite 或 memory")
    if mode == "production" and not raw["MONGODB_URI"]:
        raise InvalidInput("config.invalid", "生产环境必须配置 MONGODB_URI")
    host = raw["HOST"] or "127.0.0.1"
    port = _int("PORT", raw["PORT"] or "8000", 0, 65535)
    if port == 0 and (raw["PROCESSES"] or "1") != "1":
        raise InvalidInput("config.invalid", "多进程（PROCESSES）需要固定端口（PORT 不能为 0）")
    values: dict[str, Any] = dict(
        env=mode,
        host=host,
        port=port,
        public_url=(raw["PUBLIC_URL"] or f"http://{host}:{port}").rstrip("/"),
        mongodb_uri=raw["MONGODB_URI"] or "",
        mongodb_db=raw["MONGODB_DB"] or "yiwang",
        data_dir=data_dir,
        embedded_engine=engine,
        demo_data=(raw["DEMO_DATA"] or "0") not in ("0", "false", "no", ""),
        log_level=(raw["LOG_LEVEL"] or "INFO").upper(),
        workers=_int("WORKERS", raw["WORKERS"] or "4", 1, 64),
        processes=_int("PROCESSES", raw["PROCESSES"] or "1", 0, 64) or (os.cpu_count() or 1),
        shutdown_grace_seconds=float(_int("SHUTDOWN_GRACE_SECONDS", raw["SHUTDOWN_GRACE_SECONDS"] or "10", 0, 600)),
        pii_key=bytes.fromhex(raw["PII_KEY"] or ""),
        pii_keys_previous=_previous_keys(raw["PII_KEYS_PREVIOUS"] or "", bytes.fromhex(raw["PII_KEY"] or "")),
        blind_index_key=bytes.fromhex(raw["BLIND_INDEX_KEY"] or ""),
        cookie_secret=raw["COOKIE_SECRET"] or "",
        wechat_appid=raw["WECHAT_APPID"] or "",
        wechat_secret=raw["WECHAT_SECRET"] or "",
        wechat_api_base=(raw["WECHAT_API_BASE"] or "").rstrip("/"),
        audit_key=bytes.fromhex(raw["AUDIT_KEY"] or ""),
        audit_checkpoints=Path(raw["AUDIT_CHECKPOINTS"] or data_dir / "audit" / "checkpoints.jsonl").resolve(),
        audit_verify_seconds=_int("AUDIT_VERIFY_SECONDS", raw["AUDIT_VERIFY_SECONDS"] or "60", 5, 86400),
        wechat_templates=_json_object("WECHAT_TEMPLATES", raw["WECHAT_TEMPLATES"] or ""),
        wechat_miniprogram_state=_choice(
            "WECHAT_MINIPROGRAM_STATE", raw["WECHAT_MINIPROGRAM_STATE"] or "formal", ("formal", "trial", "developer")
        ),
        metrics_token=raw["METRICS_TOKEN"] or "",
        wechat_push_token=raw["WECHAT_PUSH_TOKEN"] or "",
        wechat_push_aes_key=_aes_key(raw["WECHAT_PUSH_AES_KEY"] or ""),
        wechat_lang=_choice("WECHAT_LANG", raw["WECHAT_LANG"] or "zh_CN", ("zh_CN", "en_US", "zh_HK", "zh_TW")),
        trusted_proxies=_networks("TRUSTED_PROXIES", raw["TRUSTED_PROXIES"] or ""),
    )
    values.update(overrides)
    return Config(**values)


def settings_table() -> str:
    """Markdown table of every setting, for the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "(generated in DATA_DIR in development; required in production)" if s.secret else (
            f"`{s.default}`" if s.default else "(empty)"
        )
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
