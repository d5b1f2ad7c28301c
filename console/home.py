"""The console's front page: who you are and what you look after."""

from __future__ import annotations

from console.base import ConsoleHandler
from yiwang import console_accounts


class HomeHandler(ConsoleHandler):
    async def get(self) -> None:
        halls = await self.halls()
        visible = console_accounts.visible_halls(self.current, halls)
        self.render_page("console/home.html", halls=[halls[c] for c in visible])
