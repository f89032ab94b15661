"""The offline FMP-compatible HTTP server (stable API) with rate limiting and fault injection.

Admin routes (no key, not counted as calls):
  GET  /_offline/stats   counters since start or the last reset
  GET  /_offline/config  current knobs
  POST /_offline/config  JSON object of knobs to change (see config.OfflineConfig)
  POST /_offline/reset   restore the start-up knobs, clear counters, the rate window and the fault RNG
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from resources.offline_fmp import OFFLINE_API_KEY, data
from resources.offline_fmp.config import OfflineConfig, make_config

log = logging.getLogger(__name__)

FMP_SITE = "https://site.financialmodelingprep.com"
INVALID_KEY = (
    "Invalid API KEY. Feel free to create a Free API Key or visit "
    f"{FMP_SITE}/faqs?search=why-is-my-api-key-invalid for more information."
)
LIMIT_REACH = f"Limit Reach . Please upgrade your plan or visit our documentation for more details at {FMP_SITE}/"
EXCLUSIVE_ENDPOINT = (
    "Exclusive Endpoint : This endpoint is not available under your current subscription agreement, "
    "please visit our subscription page to upgrade your plan or contact us at "
    f"{FMP_SITE}/developer/docs/pricing"
)
LEGACY_ENDPOINT = (
    "Legacy Endpoint : Due to Legacy endpoints being no longer supported - This endpoint is only available "
    "for legacy users who have valid subscriptions prior August 31, 2025. Please visit our subscription page "
    f"to upgrade your plan or contact us at {FMP_SITE}/developer/docs/pricing"
)
GATEWAY_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}
STAT_NAMES = (
    "calls", "rate_limited", "unauthorized", "server_errors", "malformed", "error_bodies", "plan_denied",
    "bad_requests", "not_found", "served",
)
SINGLE_SYMBOL_ENDPOINTS = {"profile", "quote", "historical-price-eod/full", *data.STATEMENT_ENDPOINTS}
ENDPOINTS = SINGLE_SYMBOL_ENDPOINTS | {"batch-quote", "sp500-constituent", "earnings-calendar"}


class Reply(Exception):
    """Short-circuits request handling with a finished response."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json; charset=utf-8"):
        super().__init__(status)
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"Error Message": message})


class OfflineFMPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts from a thread pool must not be refused at accept()

    def __init__(self, port: int, config: OfflineConfig, host: str = "127.0.0.1"):
        self.initial_config = config
        self.config = config
        self._lock = threading.Lock()
        self._reset_counters()
        super().__init__((host, port), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that timed out and hung up is routine here, not worth a traceback on stderr
        log.debug("offline FMP: request from %s ended abnormally", client_address, exc_info=True)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def _reset_counters(self) -> None:
        self.stats: Counter = Counter()
        self.by_endpoint: Counter = Counter()
        self.window: deque[float] = deque()
        self.rng = random.Random(self.config.seed)

    def reset(self) -> None:
        with self._lock:
            self.config = self.initial_config
            self._reset_counters()

    def configure(self, **changes: Any) -> OfflineConfig:
        with self._lock:
            self.config = self.config.updated(**changes)
            if "seed" in changes:
                self.rng = random.Random(self.config.seed)
            return self.config

    def count(self, *keys: str, endpoint: str | None = None) -> None:
        with self._lock:
            for key in keys:
                self.stats[key] += 1
            if endpoint:
                self.by_endpoint[endpoint] += 1

    def admit(self) -> bool:
        """Sliding-window rate limit over accepted API calls."""
        now = time.monotonic()
        with self._lock:
            cutoff = now - self.config.rate_window_s
            while self.window and self.window[0] <= cutoff:
                self.window.popleft()
            if len(self.window) >= self.config.calls_per_window():
                return False
            self.window.append(now)
            return True

    def draw(self) -> float:
        with self._lock:
            return self.rng.random()

    def choice(self, options: tuple) -> Any:
        with self._lock:
            return self.rng.choice(options)

    def snapshot(self) -> dict:
        with self._lock:
            return {**{name: self.stats[name] for name in STAT_NAMES}, "by_endpoint": dict(self.by_endpoint)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled clients reuse connections
    server: OfflineFMPServer

    def version_string(self) -> str:
        return "nginx/1.18.0 (Ubuntu)"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def _respond(self, handler: Callable[[], Reply]) -> None:
        try:
            reply = handler()
        except Reply as short_circuit:
            reply = short_circuit
        except Exception:
            log.exception("offline FMP request failed: %s", self.path)
            reply = Reply(500, b"Internal Server Error", "text/plain; charset=utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Powered-By", "Express")
        self.end_headers()
        self.wfile.write(reply.body)

    def _post(self) -> Reply:
        path = urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == "/_offline/reset":
            self.server.reset()
            return Reply(200, {"status": "reset", "config": self.server.config.to_json()})
        if path == "/_offline/config":
            try:
                changes = json.loads(raw or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("config body must be a JSON object")
                return Reply(200, self.server.configure(**changes).to_json())
            except (ValueError, TypeError) as exc:
                raise _error(400, str(exc)) from None
        raise Reply(404, f"Cannot POST {path}".encode(), "text/html; charset=utf-8")

    def _get(self) -> Reply:
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path == "/_offline/stats":
            return Reply(200, self.server.snapshot())
        if path == "/_offline/config":
            return Reply(200, self.server.config.to_json())
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        legacy = path.startswith(("/api/v3/", "/api/v4/"))
        endpoint = path.removeprefix("/stable/") if path.startswith("/stable/") else None
        if not legacy and endpoint not in ENDPOINTS:
            self.server.count("not_found")
            raise Reply(404, f"<pre>Cannot GET {url.path}</pre>".encode(), "text/html; charset=utf-8")
        if (query.get("apikey") or self.headers.get("apikey")) != OFFLINE_API_KEY:
            self.server.count("unauthorized")
            raise _error(401, INVALID_KEY)
        self.server.count("calls", endpoint=endpoint or "legacy")
        if not self.server.admit():
            self.server.count("rate_limited")
            raise _error(429, LIMIT_REACH)
        config = self.server.config
        delay = config.latency_ms + config.slow_ms
        if delay:
            time.sleep(delay / 1000)
        if legacy:
            raise _error(403, LEGACY_ENDPOINT)
        self._inject_gateway_error(config)
        if not config.plan_allows(endpoint):
            self.server.count("plan_denied")
            raise _error(402, EXCLUSIVE_ENDPOINT)
        self._inject_error_body(config, query)
        try:
            rows = self._rows(config, endpoint, query)
        except data.BadRequest as exc:
            self.server.count("bad_requests")
            raise _error(400, str(exc)) from None
        body = json.dumps(rows).encode()
        if config.malformed_rate and self.server.draw() < config.malformed_rate:
            self.server.count("malformed")
            return Reply(200, body[: max(1, len(body) // 2)])
        self.server.count("served")
        return Reply(200, body)

    def _inject_gateway_error(self, config: OfflineConfig) -> None:
        if config.error_rate and self.server.draw() < config.error_rate:
            status = self.server.choice(tuple(GATEWAY_PAGES))
            self.server.count("server_errors")
            title = GATEWAY_PAGES[status]
            page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
            raise Reply(status, page.encode(), "text/html; charset=utf-8")

    def _inject_error_body(self, config: OfflineConfig, query: dict) -> None:
        requested = (query.get("symbol") or query.get("symbols") or "").split(",")
        for symbol in requested:
            if symbol in config.error_body_symbols:
                self.server.count("error_bodies")
                raise _error(200, config.error_body_symbols[symbol])

    def _rows(self, config: OfflineConfig, endpoint: str, query: dict) -> list[dict]:
        as_of = config.current_as_of()
        if endpoint == "sp500-constituent":
            return data.constituent_rows()
        if endpoint == "earnings-calendar":
            start = data.parse_day(query.get("from"), "from")
            end = data.parse_day(query.get("to"), "to")
            return data.earnings_rows(start, end, as_of, config.restated_symbols)
        if endpoint == "batch-quote":
            symbols = [s for s in (query.get("symbols") or "").split(",") if s]
            return data.quote_rows(symbols, as_of, config.restated_symbols)
        symbol = query.get("symbol")
        if not symbol:
            raise data.BadRequest("Missing required parameter 'symbol'")
        if "," in symbol:
            return []  # stable single-symbol endpoints silently answer [] to a list (FMP_SPEC §1.3)
        if endpoint == "profile":
            return data.profile_rows(symbol, as_of, config.restated_symbols)
        if endpoint == "quote":
            return data.quote_rows([symbol], as_of, config.restated_symbols)
        if endpoint == "historical-price-eod/full":
            start = data.parse_day(query.get("from"), "from")
            end = data.parse_day(query.get("to"), "to")
            return data.eod_rows(symbol, as_of, start, end)
        return data.statement_rows(
            data.STATEMENT_ENDPOINTS[endpoint],
            symbol,
            query.get("period"),
            data.parse_limit(query.get("limit")),
            as_of,
            config.restated_symbols,
            duplicated=symbol in config.duplicate_period_symbols,
        )


def make_server(port: int = 0, host: str = "127.0.0.1", **config: Any) -> OfflineFMPServer:
    """A bound (not yet serving) offline FMP server; knobs as in ``OfflineConfig``."""
    return OfflineFMPServer(port, make_config(**config), host)


@contextmanager
def serving(port: int = 0, **config: Any) -> Iterator[OfflineFMPServer]:
    """Run an offline FMP server in a background thread for the duration of the block."""
    server = make_server(port, **config)
    thread = threading.Thread(target=server.serve_forever, name="offline-fmp", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
