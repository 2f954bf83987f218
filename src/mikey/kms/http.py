"""The KMS HTTP edge: a Starlette ASGI app over :class:`~mikey.kms.core.KmsCore` (3GPP TS 33.180 Annex D).

Starlette on uvicorn: a small, typed ASGI toolkit whose request object exposes the raw
path (the user URI segment must reach the core still percent-encoded) and lets the body
be read as a bounded stream.  The app only reads the request (at most
:data:`~mikey.kms.core.MAX_BODY_BYTES` + 1 octets are kept), runs the blocking core in a
worker thread with the wall clock, and writes the core's answer.  At most *threads* requests
run in the core at once (default :data:`DEFAULT_THREADS`, not Starlette's 40): the core's work is
mostly Python under the GIL, and more threads only contend for it.
"""

from __future__ import annotations

import functools
import time

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .core import MAX_BODY_BYTES, KmsCore

__all__ = ["create_app", "DEFAULT_THREADS"]

#: Requests one process runs in the core at once (worker threads).
DEFAULT_THREADS = 4

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


async def _bounded_body(request: Request) -> bytes:
    """The body, cut at MAX_BODY_BYTES + 1 octets (the core answers 413 to anything longer)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return b"\0" * (MAX_BODY_BYTES + 1)
    out = bytearray()
    async for chunk in request.stream():
        out += chunk
        if len(out) > MAX_BODY_BYTES:
            break
    return bytes(out[: MAX_BODY_BYTES + 1])


def create_app(core: KmsCore, *, threads: int = DEFAULT_THREADS) -> Starlette:
    """The ASGI app serving *core* at every path (the core routes and answers 404 itself), in at most
    *threads* worker threads at once."""
    if threads < 1:
        raise ValueError("threads must be at least 1")
    limiter = CapacityLimiter(threads)

    async def endpoint(request: Request) -> Response:
        body = await _bounded_body(request)
        raw = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        headers = {k: v for k, v in request.headers.items()}
        answer = await anyio.to_thread.run_sync(
            functools.partial(core.handle, request.method, path, headers, body, time.time()), limiter=limiter)
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type,
                        headers=dict(answer.headers))

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)])
