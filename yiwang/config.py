"""The one settings object, read from the environment and validated at start-up.

Each setting is declared once with its default and a one-line help; the README
table is generated from :data:`SETTINGS` (``python -m yiwang.config``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from yiwang.errors import InvalidInput
from yiwang.files import ensure_env_values, private_dir

SECRETS_HEADER = "Generated secrets (development keys, the embedded database's credentials). Mode 0600; never commit."


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
    Setting(
        "DEMO_DATA",
        None,
        "load the demo catalogue, residents, certificates and accounts on start (idempotent); default 1 in "
        "development, 0 in production, where 1 is refused",
    ),
    Setting("LOG_LEVEL", "INFO", "logging level"),
    Setting("WORKERS", "4", "threads for blocking work (Pillow, pyzbar, WeChat calls)"),
    Setting("PROCESSES", "1", "server processes sharing PORT (SO_REUSEPORT) and one database; 0 = one per core"),
    Setting("SHUTDOWN_GRACE_SECONDS", "10", "how long in-flight requests may finish after SIGTERM"),
    Setting("PII_KEY", None, "hex 16-byte SM4 key for personal data at rest", secret=True),
    Setting(
        "PII_KEYS_PREVIOUS",
        "",
        "retired PII keys still readable (hex, comma-separated) while a background job re-seals their data",
    ),
    Setting("BLIND_INDEX_KEY", None, "hex 32-byte HMAC-SM3 key for blind indexes", secret=True),
    Setting(
        "BLIND_INDEX_KEYS_PREVIOUS", "",
        "retired blind-index keys (hex, comma-separated): lookups try them while a background job re-indexes",
    ),
    Setting("COOKIE_SECRET", None, "secret for signed cookies (console, kiosk sessions)", secret=True),
    Setting("WECHAT_APPID", "wx0000000000000000", "mini-program appid"),
    Setting("WECHAT_SECRET", None, "mini-program app secret", secret=True),
    Setting("WECHAT_API_BASE", "https://api.weixin.qq.com", "WeChat API base URL (tests point it at a fake)"),
    Setting(
        "AUDIT_KEY", None, "hex 32-byte HMAC-SM3 key of the audit chain, derives the checkpoint SM2 key", secret=True
    ),
    Setting("AUDIT_CHECKPOINTS", "", "signed audit checkpoints, append-only (DATA_DIR/audit/checkpoints.jsonl)"),
    Setting("AUDIT_VERIFY_SECONDS", "60", "how often the audit trail is verified and a checkpoint written"),
    Setting(
        "WECHAT_TEMPLATES",
        "",
        "JSON: subscribe-message templates by name, {name: {id, keywords: {field: keyword}}}; empty: built-in",
    ),
    Setting("WECHAT_MINIPROGRAM_STATE", "formal", "subscribe messages open this version: formal | trial | developer"),
    Setting("WECHAT_PUSH_TOKEN", "", "message push (消息推送) Token; empty: /api/wechat/push is off"),
    Setting("WECHAT_PUSH_AES_KEY", "", "message push EncodingAESKey (43 characters, safe mode)"),
    Setting("METRICS_TOKEN", "", "bearer token for /metrics from other hosts; empty: /metrics answers loopback only"),
    Setting("WECHAT_LANG", "zh_CN", "language of subscribe messages: zh_CN | en_US | zh_HK | zh_TW"),
    Setting("TRUSTED_PROXIES", "", "CIDRs of reverse proxies whose X-Forwarded-For / X-Real-IP are believed"),
    Setting(
        "IDENTITY_VERIFIER",
        None,
        "identity verification service: demo (development default, refused in production), off, or module:Class",
    ),
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
    blind_index_keys_previous: tuple[bytes, ...] = field(default=(), repr=False)
    wechat_miniprogram_state: str = "formal"
    wechat_lang: str = "zh_CN"
    metrics_token: str = field(default="", repr=False)
    processes: int = 1
    wechat_push_token: str = field(default="", repr=False)
    wechat_push_aes_key: str = field(default="", repr=False)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    identity_verifier: str = "demo"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded(self) -> bool:
        return not self.mongodb_uri


class ConfigError(InvalidInput):
    """Every bad setting at once: ``problems`` is ``[(setting, 中文, English)]``; ``message`` names each."""

    def __init__(self, problems: list[tuple[str, str, str]], code: str = "config.invalid") -> None:
        self.problems = problems
        super().__init__(code, "；".join(zh for _, zh, _ in problems), fields={name: zh for name, zh, _ in problems})

    def report(self) -> str:
        """For the operator: one line per bad setting, in Chinese and English."""
        lines = ["配置错误 / configuration error:"]
        lines += [f"  - {name}: {zh} / {en}" for name, zh, en in self.problems]
        return "\n".join(lines)


def _bad(name: str, zh: str, en: str) -> InvalidInput:
    return InvalidInput("config.invalid", zh, fields={name: zh}, detail={"setting": name, "en": en})


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"配置项 {name} 必须是整数", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _bad(name, f"配置项 {name} 超出范围 {low}–{high}", f"{name} must be between {low} and {high}")
    return value


def _networks(name: str, raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks: list[IPv4Network | IPv6Network] = []
    for part in raw.replace(";", ",").split(","):
        if part.strip():
            try:
                networks.append(ip_network(part.strip(), strict=False))
            except ValueError:
                message = f"配置项 {name} 中的 {part.strip()!r} 不是 IP 地址或网段"
                raise _bad(name, message, f"{name}: {part.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _secret_file(data_dir: Path) -> Path:
    return data_dir / "secrets.env"


def _generated_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for development: generated once, kept in DATA_DIR with 0600."""
    wanted: dict[str, Callable[[], str]] = {
        "PII_KEY": lambda: secrets.token_hex(16),
        "BLIND_INDEX_KEY": lambda: secrets.token_hex(32),
        "COOKIE_SECRET": lambda: secrets.token_urlsafe(32),
        "WECHAT_SECRET": lambda: secrets.token_hex(16),
        "AUDIT_KEY": lambda: secrets.token_hex(32),
    }
    private_dir(data_dir)
    return ensure_env_values(_secret_file(data_dir), wanted, SECRETS_HEADER)


def _previous_keys(value: str, current: bytes, name: str = "PII_KEY") -> tuple[bytes, ...]:
    keys: list[bytes] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            key = bytes.fromhex(part)
        except ValueError:
            key = b""
        if len(key) != _HEX_LENGTHS[name]:
            raise _bad(
                f"{name}S_PREVIOUS",
                f"{name}S_PREVIOUS 中的每个密钥必须是 {_HEX_LENGTHS[name]} 字节的十六进制",
                f"{name}S_PREVIOUS: each key must be {_HEX_LENGTHS[name]} bytes of hex",
            )
        if key == current:
            raise _bad(
                f"{name}S_PREVIOUS",
                f"{name}S_PREVIOUS 不能包含当前的 {name}",
                f"{name}S_PREVIOUS must not contain the current {name}",
            )
        keys.append(key)
    return tuple(keys)


def _aes_key(value: str) -> str:
    if value and (len(value) != 43 or not value.isalnum()):
        raise _bad(
            "WECHAT_PUSH_AES_KEY",
            "WECHAT_PUSH_AES_KEY 必须是 43 位字母或数字（微信后台生成的 EncodingAESKey）",
            "WECHAT_PUSH_AES_KEY must be the 43 letters or digits of the EncodingAESKey",
        )
    return value


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _bad(name, f"{name} 只能是 " + " | ".join(allowed), f"{name} must be one of " + " | ".join(allowed))
    return value


def _json_object(name: str, value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _bad(name, f"{name} 不是有效的 JSON", f"{name} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _bad(name, f"{name} 必须是 JSON 对象", f"{name} must be a JSON object")
    return parsed


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PLACEHOLDER_APPID = "wx0000000000000000"
# Production secrets: at least this many characters, and not a repetition ("x" * 40, "abab…").
MIN_SECRET_CHARS = {"COOKIE_SECRET": 32, "WECHAT_SECRET": 32, "METRICS_TOKEN": 32}
IDENTITY_VERIFIERS_BUILT_IN = ("demo", "off")


def _weak(value: str | bytes, minimum_distinct: int) -> bool:
    return len(set(value)) < minimum_distinct


def _production_problems(raw: Mapping[str, str | None], env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """What a production instance must not start with (docs/security.md, "Production settings")."""
    problems: list[tuple[str, str, str]] = []
    if (env.get("DEMO_DATA") or "0").lower() not in _FALSE:
        problems.append(
            ("DEMO_DATA", "生产环境不能加载演示数据和演示账号", "production never loads demo data or accounts")
        )
    for name, length in _HEX_LENGTHS.items():
        value = raw[name] or ""
        try:
            key = bytes.fromhex(value)
        except ValueError:
            continue  # named by the format check
        if len(key) == length and _weak(key, length // 2):
            problems.append(
                (name, f"{name} 过于简单（看起来不是随机生成的）", f"{name} is not random (too few distinct bytes)")
            )
    for name, minimum in MIN_SECRET_CHARS.items():
        value = raw[name] or ""
        if not value:
            continue  # missing: named above (METRICS_TOKEN may be empty: /metrics then answers loopback only)
        if len(value) < minimum or _weak(value, 8):
            problems.append(
                (
                    name,
                    f"{name} 至少 {minimum} 个字符且须随机生成",
                    f"{name} must be at least {minimum} random characters",
                )
            )
    appid = raw["WECHAT_APPID"] or ""
    if appid == PLACEHOLDER_APPID or not re.fullmatch(r"wx[0-9a-f]{16}", appid):
        problems.append(
            (
                "WECHAT_APPID",
                "须配置小程序的真实 appid（不能是占位值）",
                "set the mini-program's real appid, not the placeholder",
            )
        )
    if not raw["PUBLIC_URL"]:
        problems.append(
            (
                "PUBLIC_URL",
                "生产环境必须配置对外地址（二维码和链接使用）",
                "production needs the public base URL (QR codes, links)",
            )
        )
    verifier = raw["IDENTITY_VERIFIER"] or ""
    if not verifier:
        problems.append(
            (
                "IDENTITY_VERIFIER",
                "生产环境必须明确配置身份核验服务",
                "production must name its identity verification service",
            )
        )
    elif verifier == "demo":
        problems.append(
            (
                "IDENTITY_VERIFIER",
                "演示核验（演示人口库）不能用于生产环境",
                "the demo population verifier is not for production",
            )
        )
    if not raw["MONGODB_URI"]:
        problems.append(("MONGODB_URI", "生产环境必须配置 MONGODB_URI", "production needs MONGODB_URI"))
    return problems


_FALSE = ("0", "false", "no", "off", "")


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build and validate the config; raises ConfigError (an InvalidInput) naming every bad setting."""
    env = dict(os.environ if environ is None else environ)
    raw = {s.name: env.get(s.name) or s.default for s in SETTINGS}
    mode = raw["YIWANG_ENV"] or "development"
    if mode not in ("development", "production"):
        raise ConfigError([("YIWANG_ENV", "YIWANG_ENV 只能是 development 或 production",
                            "YIWANG_ENV must be development or production")])  # fmt: skip
    production = mode == "production"
    data_dir = Path(raw["DATA_DIR"] or "./var").resolve()
    problems: list[tuple[str, str, str]] = []
    code = "config.invalid"
    missing_secrets = [s.name for s in SETTINGS if s.secret and not raw[s.name]]
    if missing_secrets:
        if production:
            code = "config.missing_secret"
            problems += [(name, f"生产环境必须配置密钥：{name}", f"production needs the secret {name}")
                         for name in missing_secrets]  # fmt: skip
        else:
            generated = _generated_secrets(data_dir)
            for name in missing_secrets:
                raw[name] = generated[name]
    for name, length in _HEX_LENGTHS.items():
        if not raw[name]:
            continue
        try:
            if len(bytes.fromhex(raw[name] or "")) != length:
                raise ValueError
        except ValueError:
            problems.append((name, f"{name} 必须是 {length} 字节的十六进制", f"{name} must be {length} bytes of hex"))
    if production:
        problems += _production_problems(raw, env)
    log_level = (raw["LOG_LEVEL"] or "INFO").upper()
    if log_level not in LOG_LEVELS:
        problems.append(("LOG_LEVEL", "LOG_LEVEL 只能是 " + " | ".join(LOG_LEVELS),
                         "LOG_LEVEL must be one of " + " | ".join(LOG_LEVELS)))  # fmt: skip
    verifier = raw["IDENTITY_VERIFIER"] or ("" if production else "demo")
    if verifier and verifier not in IDENTITY_VERIFIERS_BUILT_IN and not re.fullmatch(r"[\w.]+:\w+", verifier):
        problems.append(("IDENTITY_VERIFIER", "IDENTITY_VERIFIER 只能是 demo、off 或 模块:类",
                         "IDENTITY_VERIFIER must be demo, off or package.module:Class"))  # fmt: skip
    host = raw["HOST"] or "127.0.0.1"
    values: dict[str, Any] = {}

    def check(key: str, make: Callable[[], Any]) -> None:
        try:
            values[key] = make()
        except InvalidInput as error:
            detail = error.detail or {}
            problems.append(
                (str(detail.get("setting", key.upper())), error.message, str(detail.get("en", error.message)))
            )

    check("port", lambda: _int("PORT", raw["PORT"] or "8000", 0, 65535))
    check("engine", lambda: _choice("EMBEDDED_ENGINE", raw["EMBEDDED_ENGINE"] or "sqlite", ("sqlite", "memory")))
    check("workers", lambda: _int("WORKERS", raw["WORKERS"] or "4", 1, 64))
    check("processes", lambda: _int("PROCESSES", raw["PROCESSES"] or "1", 0, 64) or (os.cpu_count() or 1))
    check("grace", lambda: _int("SHUTDOWN_GRACE_SECONDS", raw["SHUTDOWN_GRACE_SECONDS"] or "10", 0, 600))
    check("audit_verify_seconds", lambda: _int("AUDIT_VERIFY_SECONDS", raw["AUDIT_VERIFY_SECONDS"] or "60", 5, 86400))
    check("wechat_templates", lambda: _json_object("WECHAT_TEMPLATES", raw["WECHAT_TEMPLATES"] or ""))
    check("wechat_miniprogram_state", lambda: _choice(
        "WECHAT_MINIPROGRAM_STATE", raw["WECHAT_MINIPROGRAM_STATE"] or "formal", ("formal", "trial", "developer")
    ))  # fmt: skip
    check("wechat_push_aes_key", lambda: _aes_key(raw["WECHAT_PUSH_AES_KEY"] or ""))
    check(
        "wechat_lang",
        lambda: _choice("WECHAT_LANG", raw["WECHAT_LANG"] or "zh_CN", ("zh_CN", "en_US", "zh_HK", "zh_TW")),
    )
    check("trusted_proxies", lambda: _networks("TRUSTED_PROXIES", raw["TRUSTED_PROXIES"] or ""))
    if not any(name in ("PII_KEY", "PII_KEYS_PREVIOUS") for name, _, _ in problems):
        check(
            "pii_keys_previous",
            lambda: _previous_keys(raw["PII_KEYS_PREVIOUS"] or "", bytes.fromhex(raw["PII_KEY"] or "")),
        )
    if not any(name in ("BLIND_INDEX_KEY", "BLIND_INDEX_KEYS_PREVIOUS") for name, _, _ in problems):
        check(
            "blind_index_keys_previous",
            lambda: _previous_keys(
                raw["BLIND_INDEX_KEYS_PREVIOUS"] or "", bytes.fromhex(raw["BLIND_INDEX_KEY"] or ""), "BLIND_INDEX_KEY"
            ),
        )
    if values.get("port") == 0 and values.get("processes", 1) > 1:
        problems.append(("PROCESSES", "多进程（PROCESSES）需要固定端口（PORT 不能为 0）",
                         "several processes (PROCESSES) need a fixed PORT (not 0)"))
    if problems:
        raise ConfigError(problems, code)
    port = values["port"]
    demo_default = "0" if production else "1"
    values.update(
        env=mode,
        host=host,
        port=port,
        public_url=(raw["PUBLIC_URL"] or f"http://{host}:{port}").rstrip("/"),
        mongodb_uri=raw["MONGODB_URI"] or "",
        mongodb_db=raw["MONGODB_DB"] or "yiwang",
        data_dir=data_dir,
        embedded_engine=values.pop("engine"),
        demo_data=not production and (env.get("DEMO_DATA") or demo_default).lower() not in _FALSE,
        log_level=log_level,
        shutdown_grace_seconds=float(values.pop("grace")),
        pii_key=bytes.fromhex(raw["PII_KEY"] or ""),
        blind_index_key=bytes.fromhex(raw["BLIND_INDEX_KEY"] or ""),
        cookie_secret=raw["COOKIE_SECRET"] or "",
        wechat_appid=raw["WECHAT_APPID"] or "",
        wechat_secret=raw["WECHAT_SECRET"] or "",
        wechat_api_base=(raw["WECHAT_API_BASE"] or "").rstrip("/"),
        audit_key=bytes.fromhex(raw["AUDIT_KEY"] or ""),
        audit_checkpoints=Path(raw["AUDIT_CHECKPOINTS"] or data_dir / "audit" / "checkpoints.jsonl").resolve(),
        metrics_token=raw["METRICS_TOKEN"] or "",
        wechat_push_token=raw["WECHAT_PUSH_TOKEN"] or "",
        identity_verifier=verifier,
    )
    values.update(overrides)
    return Config(**values)


def settings_table() -> str:
    """Markdown table of every setting, for the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = (
            "(generated in DATA_DIR in development; required in production)"
            if s.secret
            else (f"`{s.default}`" if s.default else "(empty)")
        )
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
