"""`DELETE /sidecar/cache[?model=GLOB]`: purge the cache, all of it or the entries of the models
matching the glob (sidecar/globs.py rules); answers `{"deleted": N}`. With the cache off there is
nothing to purge (`{"deleted": 0}`); a Redis that cannot be reached is a 503 cache_unavailable."""

from __future__ import annotations

from aiohttp import web

from sidecar.cache.store import CacheUnavailableError
from sidecar.deps import DEPS
from sidecar.errors import CacheUnavailable, InvalidRequest, SidecarError
from sidecar.globs import Globs
from sidecar.handler import error_response


async def purge_cache(request: web.Request) -> web.StreamResponse:
    store = request.config_dict[DEPS].cache
    pattern = request.query.get("model")
    if pattern is not None and not pattern.strip():
        return error_response(InvalidRequest(
            "?model= needs a model name or glob, e.g. ?model=openai/* (omit it to purge all)."))
    if store is None:
        return web.json_response({"deleted": 0})
    try:
        deleted = await store.purge(Globs([pattern]) if pattern is not None else None)
    except CacheUnavailableError as exc:
        error: SidecarError = CacheUnavailable(f"The cache could not be purged: {exc}")
        return error_response(error)
    return web.json_response({"deleted": deleted})
