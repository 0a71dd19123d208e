"""ALERT_WEBHOOK_URL unset: no alert sender (its own module: the webhook one loads httpx)."""

from __future__ import annotations

import asyncio

from pulse.core.incidents import Transition


class NoAlerts:
    """ALERT_WEBHOOK_URL unset: incidents are recorded and listed, nothing is sent."""

    sent = failed = dropped = waiting = 0

    def offer(self, transition: Transition) -> None:
        return None

    async def send_now(self, transition: Transition) -> bool:
        return False

    async def run(self) -> None:
        await asyncio.Event().wait()
