"""WeChat's message push (消息推送) to the server: URL check and encrypted events.

Configured in the mini-program's back office (开发管理 › 消息推送): URL
``PUBLIC_URL/api/wechat/push``, Token ``WECHAT_PUSH_TOKEN``, EncodingAESKey
``WECHAT_PUSH_AES_KEY``, data format JSON, mode 安全模式. The URL check (GET) and
every event (POST) are verified with WeChat's signature; events are decrypted
with wechatpy's ``WeChatCrypto``. Content-security results (``wxa_media_check``,
the answer to ``mediaCheckAsync``) are recorded by ``trace_id`` in
``media_checks`` and applied to the upload that was submitted (``yiwang.uploads``);
other events are acknowledged and ignored.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from yiwang.errors import Forbidden, InvalidInput, NotFound
from yiwang.uploads import record_media_check

if TYPE_CHECKING:
    from yiwang.config import Config
    from yiwang.store import Store

log = logging.getLogger(__name__)


def _configured(config: Config) -> tuple[str, str]:
    if not config.wechat_push_token or not config.wechat_push_aes_key:
        raise NotFound("wechat.push_disabled", "未配置微信消息推送")
    return config.wechat_push_token, config.wechat_push_aes_key


def verify_url(config: Config, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    """The URL check: ``echostr`` back when the signature is WeChat's."""
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.utils import check_signature

    token, _ = _configured(config)
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise Forbidden("wechat.push_signature", "签名校验失败") from None
    return echostr


def open_event(config: Config, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> dict[str, Any]:
    """Verify and decrypt one pushed event (JSON, safe mode)."""
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

    token, aes_key = _configured(config)
    try:
        envelope = json.loads(body)
    except ValueError:
        raise InvalidInput("wechat.push_invalid", "推送内容不是 JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("Encrypt"), str):
        raise InvalidInput("wechat.push_invalid", "推送内容缺少 Encrypt")
    crypto = WeChatCrypto(token, aes_key, config.wechat_appid)
    try:
        text = crypto.decrypt_message({"Encrypt": envelope["Encrypt"]}, msg_signature, timestamp, nonce)
    except (InvalidSignatureException, InvalidAppIdException):
        raise Forbidden("wechat.push_signature", "签名或来源校验失败") from None
    except Exception:  # a corrupt ciphertext: padding, base64
        raise InvalidInput("wechat.push_invalid", "推送内容无法解密") from None
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidInput("wechat.push_invalid", "推送内容无法解析") from None
    if not isinstance(event, dict):
        raise InvalidInput("wechat.push_invalid", "推送内容无法解析")
    return event


async def handle_event(store: Store, event: dict[str, Any]) -> str:
    """Record what the product uses; returns the event's name."""
    name = str(event.get("Event") or event.get("MsgType") or "")
    if name == "wxa_media_check":
        trace_id = str(event.get("trace_id", ""))[:128]
        raw = event.get("result")
        result: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if trace_id:

            await record_media_check(store, trace_id, str(result.get("suggest", "")), result.get("label"))
    else:
        log.info("wechat push event ignored", extra={"fields": {"event": name[:40]}})
    return name
