"""A fake Kubernetes API server, just enough for Helm's `lookup` in a cluster-aware render
(helm-python's `Config.render`): the core/v1 discovery document and GET of the Secrets it holds.
Anything else is the API server's 404 Status, as for an object that does not exist. It records
every path asked for, so a test can tell that Helm did look."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

_CORE_V1 = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
    {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
     "verbs": ["get", "list"]}]}


class KubeApi:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.asked: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """A Secret holding `data` (plain values; stored base64-encoded, as the API does)."""
        self.secrets[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}

    @property
    def kubeconfig(self) -> str:
        return (f"apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                f"clusters: [{{name: fake, cluster: {{server: '{self.url}'}}}}]\n"
                f"users: [{{name: fake, user: {{token: fake}}}}]\n"
                f"contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1", self._discovery)
        app.router.add_get("/api/v1/namespaces/{namespace}/secrets/{name}", self._secret)
        app.router.add_route("*", "/{tail:.*}", self._missing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        return web.json_response(_CORE_V1)

    async def _secret(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        secret = self.secrets.get((request.match_info["namespace"], request.match_info["name"]))
        return web.json_response(secret) if secret is not None else _not_found(request.path)

    async def _missing(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        return _not_found(request.path)


def _not_found(path: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "reason": "NotFound", "code": 404,
                              "message": f"{path} not found"}, status=404)
