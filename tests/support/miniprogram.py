"""A scripted WeChat mini-program: what the real one does, over HTTP, against
the running server and the fake WeChat API.

    mp = MiniProgram(client, fake_wechat)
    await mp.login()                      # wx.login → POST /session
    await mp.bind("李明轩", "440106199406183318")
    items = await mp.get("/items", q="社保卡")
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
from PIL import Image

from tests.support.fake_wechat import FakeWeChat

PREFIX = "/api/mobile/v1"


class ApiError(AssertionError):
    def __init__(self, status: int, body: Any, what: str) -> None:
        super().__init__(f"{what}: {status} {body}")
        self.status = status
        self.body = body


def jpeg_bytes(size: tuple[int, int] = (600, 400), color: str = "white", exif: bool = False) -> bytes:
    image = Image.new("RGB", size, color)
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x8825] = {2: (23.0, 7.0, 1.0)}  # GPS info
        tags[0x010F] = "PhoneMaker"
        image.save(out, "JPEG", exif=tags)
    else:
        image.save(out, "JPEG")
    return out.getvalue()


class MiniProgram:
    def __init__(self, client: Any, wechat: FakeWeChat, *, openid: str | None = None, device: str = "phone-1") -> None:
        self.client = client
        self.wechat = wechat
        self.openid = openid or "o" + uuid.uuid4().hex[:26]
        self.device = device
        self.token: str | None = None
        self.account: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        status, body, _ = await self.client.request(method, PREFIX + path, headers=headers, **kwargs)
        wanted = (expect,) if isinstance(expect, int) else expect
        if status not in wanted:
            raise ApiError(status, body, f"{method} {path}")
        return body

    async def get(self, path: str, *, expect: int | tuple[int, ...] = 200, **params: Any) -> Any:
        return await self.call("GET", path, expect=expect, params=params or None)

    async def post(self, path: str, json: Any = None, *, expect: int | tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        return await self.call("POST", path, expect=expect, json=json if json is not None else {}, **kw)

    # ---- the journey's steps ------------------------------------------------------

    async def login(self) -> dict[str, Any]:
        code = self.wechat.login_code(self.openid)
        body = await self.post("/session", {"code": code, "device_id": self.device}, expect=201)
        self.token = body["token"]
        self.account = body["account"]
        return body

    async def bind(self, name: str, id_number: str, *, rebind: bool = False) -> dict[str, Any]:
        self.account = await self.post("/me/identity", {"name": name, "id_number": id_number, "rebind": rebind})
        return self.account

    async def subscribe(self, *template_ids: str) -> dict[str, Any]:
        return await self.post("/me/subscriptions", {"template_ids": list(template_ids)})

    async def upload(
        self, data: bytes, filename: str = "photo.jpg", *, path: str = "/uploads", expect: int = 201, **params: Any
    ) -> Any:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        return await self.call("POST", path, expect=expect, data=form, params=params or None)

    async def apply(
        self,
        item: str,
        form: dict[str, Any],
        materials: list[dict[str, Any]],
        *,
        key: str | None = None,
        expect: int | tuple[int, ...] = (200, 201),
        path: str = "/applications",
        **extra: Any,
    ) -> Any:
        body = {"item": item, "form": form, "materials": materials, **extra}
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return await self.call("POST", path, expect=expect, json=body, headers=headers)


class Staff:
    """A department's staff member driving applications through the staff API."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    async def call(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        status, body, _ = await self.client.request(
            method, PREFIX + path, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
        )
        wanted = (expect,) if isinstance(expect, int) else expect
        if status not in wanted:
            raise ApiError(status, body, f"{method} {path}")
        return body

    async def act(self, application_id: str, action: str, expect: int = 200, **body: Any) -> Any:
        return await self.call("POST", f"/staff/applications/{application_id}/{action}", json=body, expect=expect)
