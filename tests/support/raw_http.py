"""Requests as bytes on a socket to 127.0.0.1, so a test can send what no HTTP client would
(a NUL in a header, obs-fold, a bad chunk size) and read the answer as it came."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

ANSWER_TIMEOUT_SEC = 5.0


@dataclass
class RawHttp:
    port: int

    async def raw(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send bytes as they are; (status, headers with lower-case names, body) of the answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT_SEC)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await asyncio.wait_for(reader.readexactly(length), ANSWER_TIMEOUT_SEC)
            return status, headers, body
        finally:
            writer.close()

    async def post(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        raw_headers: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n").encode() + raw_headers + b"\r\n"
        return await self.raw(head + body)
