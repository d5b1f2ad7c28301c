"""Public verification: the keys, a JSON check for scanners and a page for people."""

from __future__ import annotations

from typing import Any

from web.base import APIHandler, BaseHandler, HTMLHandler
from yiwang import verification
from yiwang.errors import InvalidInput, YiwangError
from yiwang.ofd import files as ofd_files
from yiwang.ofd.verifier import MAX_FILE_BYTES


def uploaded_file(handler: BaseHandler) -> bytes:
    """The uploaded OFD: multipart field ``file``, or the raw body (application/ofd, octet-stream)."""
    content_type = handler.request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        files = handler.request.files.get("file") or []
        if len(files) != 1:
            raise InvalidInput("ofd.file_required", "请上传一个名为 file 的 OFD 文件", fields={"file": "必填"})
        return files[0]["body"]
    return handler.request.body or b""


class KeysHandler(APIHandler):
    async def get(self) -> None:
        rendered = await verification.published_keys_rendered(self.services)
        self.write_rendered(rendered, cache_control="public, max-age=300")


class CheckHandler(APIHandler):
    async def get(self) -> None:
        text = verification.qr_text_from(self.get_query_argument("c", ""), self.get_query_argument("copy", None))
        self.write_json(await verification.check_online(self.services, text))


class FileHandler(APIHandler):
    """An uploaded OFD e-certificate file: signature, seal, issuer key, metadata, live status."""

    # Up to twice the file limit reaches the verifier (which says ofd.too_large); beyond, refused unread.
    max_body_bytes = 2 * MAX_FILE_BYTES + 64 * 1024

    async def post(self) -> None:
        self.write_json(await ofd_files.check_file(self.services, uploaded_file(self)))


class VerifyPageHandler(HTMLHandler):
    max_body_bytes = 2 * MAX_FILE_BYTES + 64 * 1024
    async def get(self) -> None:
        text = verification.qr_text_from(self.get_query_argument("c", ""), self.get_query_argument("copy", None))
        if not text:  # no QR text: the page offers the OFD file upload
            self.render_page("verify/page.html", result=None, file_report=None, error=None)
            return
        try:
            result = await verification.check_online(self.services, text)
        except YiwangError as exc:
            self.set_error_status(exc)
            self.render_page("verify/page.html", result=None, file_report=None, error=exc.as_dict())
            return
        self.render_page("verify/page.html", result=result, file_report=None, error=None)

    async def post(self) -> None:
        """The page's upload forms: a photo of a copy's QR, or an OFD file (as POST /api/verify/v1/file)."""
        photos = self.request.files.get("photo") or []
        if photos:
            try:
                result = await verification.check_photo(self.services, photos[0]["body"])
            except YiwangError as exc:
                self.set_error_status(exc)
                self.render_page("verify/page.html", result=None, file_report=None, error=exc.as_dict())
                return
            self.render_page("verify/page.html", result=result, file_report=None, error=None)
            return
        try:
            report = await ofd_files.check_file(self.services, uploaded_file(self))
        except YiwangError as exc:
            self.set_error_status(exc)
            self.render_page("verify/page.html", result=None, file_report=None, error=exc.as_dict())
            return
        self.render_page("verify/page.html", result=None, file_report=report, error=None)


def routes() -> list[Any]:
    return [
        (r"/api/verify/v1/keys", KeysHandler),
        (r"/api/verify/v1/check", CheckHandler),
        (r"/api/verify/v1/file", FileHandler),
        (r"/verify", VerifyPageHandler),
    ]
