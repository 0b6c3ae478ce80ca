"""A small async client for a real Home Assistant: onboarding, tokens, REST, WebSocket.

It speaks only the public HTTP/WebSocket APIs the frontend uses, so what works here
works for a user clicking through the UI.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


class HaApiError(RuntimeError):
    """Home Assistant answered, but not what the caller needed."""


@dataclass(frozen=True, slots=True)
class Login:
    """Who we are on the instance; ``token`` is a long-lived access token."""

    username: str
    password: str
    token: str
    refresh_token: str


class HaClient:
    """REST + WebSocket access to one instance on ``base_url`` (e.g. http://127.0.0.1:8123)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> HaClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket and HTTP session (safe to call twice)."""
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use HaClient as an async context manager")
        return self._session

    @property
    def client_id(self) -> str:
        """The frontend's OAuth client id is the instance URL itself (IndieAuth)."""
        return f"{self.base_url}/"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self, method: str, path: str, json: Any = None, *, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        """One JSON request; a status outside ``expect`` raises with HA's message."""
        async with self.session.request(
            method, self.base_url + path, json=json, headers=self._headers()
        ) as resp:
            text = await resp.text()
            if resp.status not in expect:
                raise HaApiError(f"{method} {path} -> {resp.status}: {text[:500]}")
            return await resp.json(content_type=None) if text else None

    async def wait_until_up(self, timeout_s: float, is_alive: Any = None) -> None:
        """Poll /api/onboarding (no auth) until HTTP answers; ``is_alive()`` aborts early."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if is_alive is not None and not is_alive():
                raise HaApiError("Home Assistant exited during start-up (see its log)")
            try:
                async with self.session.get(self.base_url + "/manifest.json") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError) as err:
                last = err
            await asyncio.sleep(0.5)
        raise HaApiError(f"Home Assistant did not answer within {timeout_s:.0f} s ({last})")

    async def wait_until_running(self, timeout_s: float) -> None:
        """Wait for the core state RUNNING (start-up finished, integrations set up)."""
        deadline = time.monotonic() + timeout_s
        state = None
        while time.monotonic() < deadline:
            config = await self.request("GET", "/api/config")
            state = config.get("state")
            if state == "RUNNING":
                return
            await asyncio.sleep(0.5)
        raise HaApiError(f"core state is {state!r} after {timeout_s:.0f} s, not RUNNING")

    # -- onboarding --------------------------------------------------------------------

    async def onboard(self, name: str, username: str, password: str) -> Login:
        """Do every onboarding step like the frontend and return a long-lived token."""
        steps = await self.request("GET", "/api/onboarding")
        done = {step["step"] for step in steps if step["done"]}
        if "user" in done:
            raise HaApiError("instance is already onboarded; log in with the existing user")
        user = await self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        tokens = await self._exchange_code(user["auth_code"])
        self.token = tokens["access_token"]
        if "core_config" not in done:  # prepare_config marks it done (configuration.yaml)
            await self.request("POST", "/api/onboarding/core_config", {})
        await self.request("POST", "/api/onboarding/analytics", {})
        await self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.base_url}/?auth_callback=1"},
        )
        long_lived = await self.ws_command(
            {
                "type": "auth/long_lived_access_token",
                "client_name": "nilm-dev replay",
                "lifespan": 3650,
            }
        )
        self.token = str(long_lived)
        await self._reconnect_ws()
        return Login(username, password, self.token, tokens["refresh_token"])

    async def login(self, username: str, password: str) -> str:
        """Log in like the login page (auth login flow) and return a new long-lived token."""
        flow = await self.request(
            "POST",
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.base_url}/?auth_callback=1",
            },
        )
        result = await self.request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": username, "password": password},
        )
        if result.get("type") != "create_entry":
            raise HaApiError(f"login failed: {result.get('errors') or result}")
        tokens = await self._exchange_code(result["result"])
        self.token = tokens["access_token"]
        long_lived = await self.ws_command(
            {"type": "auth/long_lived_access_token", "client_name": "nilm-dev", "lifespan": 3650}
        )
        await self._reconnect_ws()
        self.token = str(long_lived)
        return self.token

    async def token_works(self) -> bool:
        """Whether the current token is accepted (it may predate a clock change)."""
        try:
            await self.request("GET", "/api/")
        except HaApiError as err:
            if "-> 401" in str(err):
                return False
            raise
        return True

    async def _exchange_code(self, code: str) -> dict[str, Any]:
        data = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        async with self.session.post(self.base_url + "/auth/token", data=data) as resp:
            if resp.status != 200:
                raise HaApiError(f"token exchange failed: {resp.status} {await resp.text()}")
            result: dict[str, Any] = await resp.json()
            return result

    # -- websocket ---------------------------------------------------------------------

    async def _reconnect_ws(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def _connect_ws(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is not None and not self._ws.closed:
            return self._ws
        ws = await self.session.ws_connect(self.base_url + "/api/websocket", heartbeat=None)
        hello = await ws.receive_json(timeout=10)
        if hello.get("type") != "auth_required":
            raise HaApiError(f"unexpected WebSocket greeting {hello}")
        await ws.send_json({"type": "auth", "access_token": self.token})
        answer = await ws.receive_json(timeout=10)
        if answer.get("type") != "auth_ok":
            raise HaApiError(f"WebSocket auth failed: {answer}")
        self._ws = ws
        return ws

    async def ws_command(self, message: dict[str, Any], timeout_s: float = 30) -> Any:
        """Send one command and return its ``result`` (errors raise with HA's message)."""
        ws = await self._connect_ws()
        msg_id = next(self._ids)
        await ws.send_json({"id": msg_id, **message})
        deadline = time.monotonic() + timeout_s
        while True:
            reply = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("id") != msg_id or reply.get("type") != "result":
                continue
            if not reply.get("success"):
                raise HaApiError(f"{message['type']} failed: {reply.get('error')}")
            return reply.get("result")

    # -- states, registries, config flows ---------------------------------------------

    async def set_state(
        self, entity_id: str, state: str, attributes: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST /api/states/<entity_id>: what any external sensor bridge does.

        Returns HA's view of the state; ``last_reported`` is HA's clock at this write.
        """
        result: dict[str, Any] = await self.request(
            "POST", f"/api/states/{entity_id}", {"state": state, "attributes": attributes or {}}
        )
        return result

    async def get_state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", f"/api/states/{entity_id}")
        except HaApiError as err:
            if "-> 404" in str(err):
                return None
            raise
        return result

    async def get_states(self) -> dict[str, dict[str, Any]]:
        states = await self.request("GET", "/api/states")
        return {s["entity_id"]: s for s in states}

    async def entity_registry(self, platform: str | None = None) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.ws_command(
            {"type": "config/entity_registry/list"}
        )
        return [e for e in entries if platform is None or e.get("platform") == platform]

    async def device_registry(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.ws_command(
            {"type": "config/device_registry/list"}
        )
        return result

    async def config_entries(self, domain: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request(
            "GET", f"/api/config/config_entries/entry?domain={domain}"
        )
        return result

    async def start_flow(self, handler: str) -> dict[str, Any]:
        """Open a config flow exactly as the "Add integration" dialog does."""
        result: dict[str, Any] = await self.request(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": handler, "show_advanced_options": False},
        )
        return result

    async def flow_step(self, flow_id: str, user_input: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", f"/api/config/config_entries/flow/{flow_id}", user_input
        )
        return result

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any], *, timeout_s: float = 600
    ) -> Any:
        """Call an action and return its response (``?return_response``)."""
        async with self.session.post(
            f"{self.base_url}/api/services/{domain}/{service}?return_response",
            json=data,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise HaApiError(f"{domain}.{service} -> {resp.status}: {text[:500]}")
            result = await resp.json(content_type=None)
            return result.get("service_response") if isinstance(result, dict) else result

    async def has_service(self, domain: str, service: str) -> bool:
        services = await self.request("GET", "/api/services")
        return any(d["domain"] == domain and service in d["services"] for d in services)

    async def reload_entry(self, entry_id: str) -> None:
        await self.request("POST", f"/api/config/config_entries/entry/{entry_id}/reload")

    async def energy_prefs(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.ws_command({"type": "energy/get_prefs"})
        return result

    async def save_energy_prefs(self, prefs: dict[str, Any]) -> None:
        await self.ws_command({"type": "energy/save_prefs", **prefs})

    async def history(
        self, entity_id: str, start_iso: str, end_iso: str | None = None
    ) -> list[dict[str, Any]]:
        """Recorded states of one entity since ``start_iso`` (needs recorder + history);
        up to ``end_iso`` (HA's default: one day after the start)."""
        end = f"&end_time={end_iso}" if end_iso else ""
        rows = await self.request(
            "GET",
            f"/api/history/period/{start_iso}?filter_entity_id={entity_id}"
            f"&minimal_response&no_attributes{end}",
        )
        return list(rows[0]) if rows else []


def field_options(schema: list[dict[str, Any]], name: str) -> list[str]:
    """The values a form field offers (selector options or a voluptuous ``in`` list)."""
    for field in schema:
        if field.get("name") != name:
            continue
        selector = field.get("selector") or {}
        for kind in ("select", "entity"):
            options = (selector.get(kind) or {}).get("options")
            if options:
                return [o["value"] if isinstance(o, dict) else str(o) for o in options]
        if isinstance(field.get("options"), list):
            return [o[0] if isinstance(o, list | tuple) else str(o) for o in field["options"]]
    return []
