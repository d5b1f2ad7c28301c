"""Residents' free text through WeChat's content security check (msgSecCheck v2).

Text a resident writes that staff or the public will read (complaints, the
comment of a rating) is checked before it is stored:

* ``risky``: refused with a clear message (400 ``content.refused``), nothing stored;
* ``review``: stored, flagged ``content_check: review`` for the staff who read it;
* ``pass``: stored;
* WeChat unreachable, or no openid to check against (a kiosk, an agent): stored,
  flagged ``unchecked``. A complaint to the government is never lost because
  WeChat is down; it is checked by the people who read it instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from yiwang.accounts import openid_of
from yiwang.errors import InvalidInput
from yiwang.wechat import WeChatError, gateway

if TYPE_CHECKING:
    from yiwang.runtime import Services

log = logging.getLogger(__name__)

Verdict = Literal["pass", "review", "unchecked"]
# msgSecCheck scenes: 1 资料, 2 评论, 3 论坛, 4 社交日志
SCENE_PROFILE, SCENE_COMMENT, SCENE_FORUM = 1, 2, 3


class ContentRefused(InvalidInput):
    code = "content.refused"
    message = "内容含有不当信息，请修改后再提交"


async def check_text(services: Services, account_id: str | None, text: str, scene: int, field: str) -> Verdict:
    """The verdict on ``text``; raises ContentRefused when WeChat judges it risky."""
    if not text.strip():
        return "pass"

    openid = await openid_of(services, account_id) if account_id else None
    if openid is None:
        return "unchecked"
    try:
        suggest = await gateway(services).msg_sec_check(openid, text, scene)
    except WeChatError:
        log.warning("content check unavailable; stored unchecked")
        return "unchecked"
    if suggest == "risky":
        raise ContentRefused(fields={field: "请删除不当内容后再提交"})
    return "review" if suggest == "review" else "pass"
