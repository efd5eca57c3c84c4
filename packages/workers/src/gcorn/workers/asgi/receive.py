"""What an ASGI http `receive` waits on, for an HTTP/1 exchange and an HTTP/2 stream alike."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ReceiveSide"]

_DISCONNECT = {"type": "http.disconnect"}


class ReceiveSide:
    """ASGI `receive` over a buffered request body: its end, the client's loss, and the one
    future that waits for them.

    A mix-in: the exchange holds `body`, `body_complete`, `final_sent`,
    `disconnected`, `response_complete` and `waiter` (class defaults or slots of
    its own) and supplies `_take_body`, which hands over what is buffered.
    """

    body: Any
    body_complete: bool
    final_sent: bool
    disconnected: bool
    response_complete: bool
    waiter: asyncio.Future[None] | None

    async def receive(self) -> dict[str, Any]:
        """ASGI `receive`: the next `http.request` piece, or `http.disconnect`."""
        while True:
            if self.final_sent or self.response_complete or (self.disconnected
                                                             and not self.body):
                return await self._wait_disconnect()
            if self.body or self.body_complete:
                data = self._take_body()
                more = not self.body_complete
                if not more:
                    self.final_sent = True
                return {"type": "http.request", "body": data, "more_body": more}
            await self._wait_body()

    def _take_body(self) -> bytes:
        """What is buffered of the body, now the app's."""
        raise NotImplementedError

    def _wait_body(self) -> asyncio.Future[None]:
        """What `receive` waits on while no body is buffered."""
        return self._waiter()

    def end_body(self) -> None:
        """The whole request body has been received."""
        self.body_complete = True
        self._wake()

    def lose_client(self) -> None:
        """The client is gone: a pending or next `receive` gets `http.disconnect`."""
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_disconnect(self) -> dict[str, Any]:
        while not self.disconnected and not self.response_complete:
            await self._waiter()
        return _DISCONNECT

    def _waiter(self) -> asyncio.Future[None]:
        # one future shared by every receive() waiting at the same time (an app
        # may listen for the disconnect in one task while another reads)
        waiter = self.waiter
        if waiter is None or waiter.done():
            waiter = self.waiter = asyncio.get_running_loop().create_future()
        return waiter
