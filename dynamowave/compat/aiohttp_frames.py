"""API Gateway's 32 KB per-frame limit in aiohttp's WebSocket server (aiohttp 3.14.5 internals).

aiohttp limits whole messages (`max_msg_size`, aio-libs/aiohttp#1952) but not single frames;
API Gateway closes a connection with 1009 on a frame over 32 KB even when the message is
smaller. There is no public hook for a frame limit, so this subclasses aiohttp's private
pure-Python reader (`aiohttp._websocket.reader_py`) and re-implements the private
`WebSocketResponse._post_start` to install it. Both change between releases: `require` checks
the version first (dynamowave/compat/__init__.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp._websocket import reader_py
from aiohttp.http_websocket import WebSocketError

from dynamowave.compat import require


class FrameLimitedReader(reader_py.WebSocketReader):
    """aiohttp's (pure Python) frame parser plus API Gateway's 32 KB per-frame limit.

    aiohttp only limits whole messages; API Gateway limits each frame too, so a 40 KB message in
    one frame is refused while the same 40 KB in two 20 KB fragments is accepted.
    """

    frame_limit = 32 * 1024

    def _handle_frame(self, fin: bool, opcode: int, payload: bytes | bytearray, compressed: int) -> None:
        if opcode in (reader_py.OP_CODE_TEXT, reader_py.OP_CODE_BINARY, reader_py.OP_CODE_CONTINUATION) and (
            len(payload) > self.frame_limit
        ):
            raise WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, f"Frame size exceeds {self.frame_limit} bytes")
        super()._handle_frame(fin, opcode, payload, compressed)


class GatewayWebSocket(web.WebSocketResponse):
    """A WebSocketResponse whose parser enforces the per-frame limit (see `FrameLimitedReader`)."""

    def __init__(self, *, frame_limit: int, **kwargs: Any) -> None:
        require("aiohttp")
        super().__init__(**kwargs)
        self._frame_limit = frame_limit

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        # aiohttp's own _post_start with the frame-limited parser in place of the default one
        # (a protocol accepts exactly one parser, so this cannot be a swap after super()).
        from aiohttp.helpers import DEFAULT_CHUNK_SIZE

        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        queue = reader_py.WebSocketDataQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        parser = FrameLimitedReader(
            queue, self._max_msg_size, compress=bool(self._compress), decode_text=True
        )
        parser.frame_limit = self._frame_limit
        self._reader = queue
        self._parser = parser
        callback = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(parser, data_received_cb=callback)
        request.protocol.keep_alive(False)
