"""Financial Modeling Prep (stable API) client and its Dagster resource.

Symbols go in and come out in index (dot) form, ``BRK.B``; on the wire FMP uses ``BRK-B``.
Every HTTP request, retries included, passes one process-wide rate limiter per client; 429, 5xx,
connection errors and truncated bodies are retried with exponential backoff and jitter; 401, 402,
403 and 404 are not. The API key travels only in the ``apikey`` header and is redacted from
exception messages and from the ``urllib3``/``requests``/``resources.fmp`` log records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import dagster as dg
import requests
import tenacity
from pydantic import Field
from pyrate_limiter import InMemoryBucket, Limiter, Rate
from requests.adapters import HTTPAdapter

from resources.settings import resolved

log = logging.getLogger(__name__)

FMP_BASE_URL = "https://financialmodelingprep.com"
STATEMENT_ENDPOINTS = {
    "income": "income-statement",
    "balance": "balance-sheet-statement",
    "cashflow": "cash-flow-statement",
}
STATEMENT_PERIODS = {"annual", "quarter", "FY", "Q1", "Q2", "Q3", "Q4"}
MAX_STATEMENT_LIMIT = 1000
BATCH_QUOTE_SIZE = 100
DEFAULT_HISTORY_START = date(1995, 1, 1)
# FMP cuts a price response at about 5,000 rows (FMP_SPEC §1.5): 18 years is ~4,500 trading days
PRICE_WINDOW_YEARS = 18
REDACTED = "***"

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def to_fmp_symbol(symbol: str) -> str:
    return symbol.strip().replace(".", "-")


def from_fmp_symbol(symbol: str) -> str:
    return symbol.replace("-", ".")


# --- secrets redaction -------------------------------------------------------------------------

_secrets: tuple[str, ...] = ()  # replaced, never mutated, so readers need no lock
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    global _secrets
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _secrets = tuple(sorted(set(_secrets) | {secret, quote(secret, safe="")}, key=len, reverse=True))


def redact(text: object) -> str:
    """``text`` with every registered API key replaced by ``***``."""
    result = str(text)
    for secret in _secrets:
        result = result.replace(secret, REDACTED)
    return result


class RedactingFilter(logging.Filter):
    """Rewrites a log record whose message or traceback contains an API key."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not a reason to drop it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_REDACTING_FILTER = RedactingFilter()
_LOGGER_PREFIXES = ("urllib3", "requests", __name__)
_KNOWN_LOGGERS = (
    "urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.response", "urllib3.poolmanager",
    "urllib3.util.retry", "requests", __name__,
)


def install_log_redaction() -> None:
    """Attach the redacting filter to the HTTP stack's loggers (filters do not inherit to children)."""
    names = set(_KNOWN_LOGGERS) | {
        name for name in list(logging.root.manager.loggerDict) if name.startswith(_LOGGER_PREFIXES)
    }
    for name in names:
        logger = logging.getLogger(name)
        if _REDACTING_FILTER not in logger.filters:
            logger.addFilter(_REDACTING_FILTER)


# --- errors ------------------------------------------------------------------------------------


class FMPError(Exception):
    """An FMP request failed; the message names the endpoint and symbol, never the key."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None,
                 symbol: str | None = None, retryable: bool | None = None):
        super().__init__(redact(message))
        self.status = status
        self.endpoint = endpoint
        self.symbol = symbol
        if retryable is not None:
            self.retryable = retryable


class FMPAuthError(FMPError):
    """401: missing or invalid API key."""


class FMPPlanError(FMPError):
    """402: the endpoint or symbol is not in the subscription plan."""


class FMPForbiddenError(FMPError):
    """403: legacy (v3/v4) endpoint for a post-2025-08-31 key."""


class FMPNotFoundError(FMPError):
    """404: no such endpoint."""


class FMPRateLimitError(FMPError):
    """429 (or a 'Limit Reach' body) still after all retries."""

    retryable = True


class FMPServerError(FMPError):
    """5xx still after all retries."""

    retryable = True


class FMPConnectionError(FMPError):
    """Connection refused/reset, timeout or a broken transfer, still after all retries."""

    retryable = True


class FMPMalformedResponse(FMPError):
    """The body is not JSON, not the expected shape, or an unrecognised ``Error Message``."""


_STATUS_ERRORS: dict[int, type[FMPError]] = {
    401: FMPAuthError, 402: FMPPlanError, 403: FMPForbiddenError, 404: FMPNotFoundError, 429: FMPRateLimitError,
}


def classify_error_text(text: str) -> type[FMPError] | None:
    """The typed error an FMP ``Error Message`` text stands for, when recognisable."""
    lowered = text.lower()
    if "invalid api key" in lowered:
        return FMPAuthError
    if "limit reach" in lowered:  # checked before the plan phrases: its text says "upgrade your plan"
        return FMPRateLimitError
    if "legacy endpoint" in lowered:
        return FMPForbiddenError
    if any(p in lowered for p in ("exclusive endpoint", "special endpoint", "premium", "subscription")):
        return FMPPlanError
    return None


def _error_detail(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("Error Message"):
        return str(payload["Error Message"])
    text = " ".join(response.text.split())
    return text[:300] or response.reason or "no body"


def _error_for_status(response: requests.Response, where: str) -> FMPError:
    status = response.status_code
    detail = _error_detail(response)
    if status >= 500:
        return FMPServerError(f"FMP server error {status} {where}: {detail}", status=status)
    cls = _STATUS_ERRORS.get(status) or classify_error_text(detail) or FMPError
    return cls(f"FMP HTTP {status} {where}: {detail}", status=status)


# --- client ------------------------------------------------------------------------------------


class FMPClient:
    """Thread-safe FMP stable-API client: one pooled session, one rate limiter, typed errors."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        calls_per_minute: int = 750,
        max_workers: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        rate_window_s: float = 60.0,
    ):
        if not api_key:
            raise ValueError("FMPClient needs an API key")
        register_secret(api_key)
        install_log_redaction()
        self.base_url = base_url.rstrip("/")
        self.calls_per_minute = calls_per_minute
        self.max_workers = max_workers
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self._backoff = (backoff_initial, backoff_max)
        calls_per_window = max(1, round(calls_per_minute * rate_window_s / 60))
        self._limiter = Limiter(InMemoryBucket([Rate(calls_per_window, int(rate_window_s * 1000))]))
        self._session = requests.Session()
        self._session.headers.update({"apikey": api_key, "Accept": "application/json"})
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_workers)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._counters: Counter = Counter()
        self._counters_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FMPClient(base_url={self.base_url!r}, calls_per_minute={self.calls_per_minute})"

    # counters

    def _count(self, name: str) -> None:
        with self._counters_lock:
            self._counters[name] += 1

    @property
    def calls_made(self) -> int:
        return self.snapshot()["calls_made"]

    @property
    def rate_limited(self) -> int:
        return self.snapshot()["rate_limited"]

    def snapshot(self) -> dict[str, int]:
        """HTTP requests sent (retries included), 429s received and retries scheduled."""
        with self._counters_lock:
            return {name: self._counters[name] for name in ("calls_made", "rate_limited", "retries")}

    # transport

    def _get_json(self, endpoint: str, params: dict[str, Any], symbol: str | None = None) -> Any:
        where = f"on /stable/{endpoint}" + (f" (symbol {symbol})" if symbol else "")
        initial, maximum = self._backoff
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, FMPError) and exc.retryable),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, endpoint, params, where)
        except FMPError as exc:
            exc.endpoint, exc.symbol = f"/stable/{endpoint}", symbol
            raise

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        self._count("retries")
        log.info(
            "retrying after %s (attempt %d of %d, sleeping %.2f s)",
            state.outcome.exception() if state.outcome else "error",
            state.attempt_number + 1,
            self.max_retries + 1,
            state.next_action.sleep if state.next_action else 0.0,
        )

    def _attempt(self, endpoint: str, params: dict[str, Any], where: str) -> Any:
        self._limiter.try_acquire("fmp")
        self._count("calls_made")
        try:
            response = self._session.get(f"{self.base_url}/stable/{endpoint}", params=params, timeout=self.timeout)
        except requests.Timeout as exc:
            raise FMPConnectionError(f"FMP request timed out {where}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise FMPConnectionError(f"FMP connection failed {where}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 429:
            self._count("rate_limited")
        if response.status_code >= 400:
            raise _error_for_status(response, where)
        if not response.content.strip():
            return []
        try:
            payload = response.json()
        except ValueError:
            # usually a transfer cut short; a later attempt normally gets the whole body
            preview = " ".join(response.text[:80].split())
            raise FMPMalformedResponse(
                f"FMP returned a body that is not JSON {where} ({len(response.content)} bytes, starts {preview!r})",
                status=response.status_code,
                retryable=True,
            ) from None
        if isinstance(payload, dict) and ("Error Message" in payload or "error" in payload):
            text = str(payload.get("Error Message") or payload.get("error"))
            cls = classify_error_text(text) or FMPMalformedResponse
            if cls is FMPRateLimitError:
                self._count("rate_limited")
            raise cls(f"FMP answered {response.status_code} with an error body {where}: {text}", status=200)
        return payload

    def _rows(self, endpoint: str, params: dict[str, Any], symbol: str | None = None) -> list[dict]:
        payload = self._get_json(endpoint, params, symbol)
        if not isinstance(payload, list) or not all(isinstance(row, dict) for row in payload):
            raise FMPMalformedResponse(
                f"FMP returned {type(payload).__name__} instead of a list of objects on /stable/{endpoint}"
                + (f" (symbol {symbol})" if symbol else ""),
                endpoint=f"/stable/{endpoint}",
                symbol=symbol,
            )
        for row in payload:
            if isinstance(row.get("symbol"), str):
                row["symbol"] = from_fmp_symbol(row["symbol"])
        return payload

    # endpoints

    def profile(self, symbol: str) -> dict | None:
        """The company profile, or None when FMP does not know the symbol."""
        rows = self._rows("profile", {"symbol": to_fmp_symbol(symbol)}, symbol)
        return rows[0] if rows else None

    def quote(self, symbol: str) -> dict | None:
        rows = self._rows("quote", {"symbol": to_fmp_symbol(symbol)}, symbol)
        return rows[0] if rows else None

    def batch_quote(self, symbols: Iterable[str]) -> list[dict]:
        """Quotes for ``symbols`` in requests of at most 100 symbols; unknown symbols are absent."""
        wanted = list(dict.fromkeys(to_fmp_symbol(s) for s in symbols))
        rows: list[dict] = []
        for start in range(0, len(wanted), BATCH_QUOTE_SIZE):
            chunk = wanted[start : start + BATCH_QUOTE_SIZE]
            label = f"{from_fmp_symbol(chunk[0])}..{from_fmp_symbol(chunk[-1])} ({len(chunk)} symbols)"
            rows.extend(self._rows("batch-quote", {"symbols": ",".join(chunk)}, label))
        return rows

    def historical_prices(self, symbol: str, start: date | None = None, end: date | None = None) -> list[dict]:
        """Daily bars in [start, end], newest first. Always sends from/to (FMP truncates without
        them) and splits long ranges so no response hits FMP's row cap."""
        end = end or date.today()
        start = start or DEFAULT_HISTORY_START
        by_date: dict[str, dict] = {}
        for window_start, window_end in _date_windows(start, end, PRICE_WINDOW_YEARS):
            params = {"symbol": to_fmp_symbol(symbol), "from": window_start.isoformat(), "to": window_end.isoformat()}
            for row in self._rows("historical-price-eod/full", params, symbol):
                by_date[row["date"]] = row
        return [by_date[day] for day in sorted(by_date, reverse=True)]

    def statements(
        self, kind: str, symbol: str, period: str = "annual", limit: int = MAX_STATEMENT_LIMIT
    ) -> list[dict]:
        """Income ("income"), balance-sheet ("balance") or cash-flow ("cashflow") statements,
        newest first. ``period``: annual or quarter (also FY, Q1..Q4)."""
        if kind not in STATEMENT_ENDPOINTS:
            raise ValueError(f"kind must be one of {sorted(STATEMENT_ENDPOINTS)}, got {kind!r}")
        if period not in STATEMENT_PERIODS:
            raise ValueError(f"period must be one of {sorted(STATEMENT_PERIODS)}, got {period!r}")
        if not 1 <= limit <= MAX_STATEMENT_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_STATEMENT_LIMIT}, got {limit}")
        params = {"symbol": to_fmp_symbol(symbol), "period": period, "limit": limit}
        return self._rows(STATEMENT_ENDPOINTS[kind], params, symbol)

    def earnings_calendar(self, start: date, end: date) -> list[dict]:
        """Companies that reported in [start, end] (at most 90 days): one call for the whole market,
        so a daily refresh learns which statements are new without asking per symbol."""
        return self._rows("earnings-calendar", {"from": start.isoformat(), "to": end.isoformat()})

    def sp500_constituents(self) -> list[dict]:
        """Current S&P 500 members (Premium plan; FMPPlanError on lower plans)."""
        return self._rows("sp500-constituent", {})

    def map_concurrent(
        self, fn: Callable[[K], T], items: Iterable[K], max_workers: int | None = None
    ) -> dict[K, T | Exception]:
        """``fn(item)`` for every item on a thread pool; a failing item maps to its exception.
        The client's rate limiter paces the calls ``fn`` makes, whatever the pool size."""
        return next(self.map_concurrent_groups(fn, [list(items)], max_workers), {})

    def map_concurrent_groups(
        self, fn: Callable[[K], T], groups: Sequence[Sequence[K]], max_workers: int | None = None
    ) -> Iterator[dict[K, T | Exception]]:
        """Like ``map_concurrent`` over every group at once (submitted in order), yielding each group's
        results as soon as that group is complete, while later groups keep fetching."""
        total = sum(len(g) for g in groups)
        workers = max(1, min(max_workers or self.max_workers, total or 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fmp")
        try:
            submitted = [{item: pool.submit(fn, item) for item in dict.fromkeys(group)} for group in groups]
            for futures in submitted:
                results: dict[K, T | Exception] = {}
                for item, future in futures.items():
                    error = future.exception()
                    results[item] = error if error is not None else future.result()
                yield results
        finally:  # a consumer that stops early (an error) must not wait for the rest of the fetches
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._session.close()
        self._limiter.close()

    def __enter__(self) -> FMPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def price_requests(start: date, end: date) -> int:
    """HTTP requests ``historical_prices(symbol, start, end)`` makes (one per window)."""
    return len(_date_windows(start, end, PRICE_WINDOW_YEARS))


def _date_windows(start: date, end: date, years: int) -> list[tuple[date, date]]:
    """[start, end] cut into consecutive windows of at most ``years``, the newest full-length."""
    windows = []
    while start <= end:
        try:
            begin = end.replace(year=end.year - years) + timedelta(days=1)
        except ValueError:  # 29 February
            begin = end.replace(year=end.year - years, day=28) + timedelta(days=1)
        begin = max(begin, start)
        windows.append((begin, end))
        end = begin - timedelta(days=1)
    return windows


# --- process-wide clients and the Dagster resource ---------------------------------------------

_clients: dict[tuple, FMPClient] = {}
_clients_lock = threading.Lock()


def shared_client(base_url: str, api_key: str, **settings: Any) -> FMPClient:
    """The process's one client for this base URL, key and settings (so they share one limiter)."""
    key = (base_url.rstrip("/"), hashlib.sha256(api_key.encode()).hexdigest(), tuple(sorted(settings.items())))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = FMPClient(base_url, api_key, **settings)
        return client


class FMPResource(dg.ConfigurableResource):
    """Financial Modeling Prep access. Without an API key it uses the offline FMP server, started
    on first use. Build it with ``FMPResource.from_env()`` so the key stays an ``EnvVar``."""

    api_key: str | None = Field(
        default=None, repr=False, description="FMP API key (use EnvVar); None selects the offline server"
    )
    base_url: str | None = Field(
        default=None, description="API root; default FMP with a key, else the local offline server"
    )
    calls_per_minute: int = Field(default=750, description="client-side limit shared by all threads")
    max_workers: int = Field(default=8, description="HTTP pool size and default map_concurrent threads")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = Field(default=6, description="retries on 429, 5xx, connection errors")

    @classmethod
    def from_env(cls) -> FMPResource:
        """Configuration from FMP_API_KEY, FMP_BASE_URL and FMP_CALLS_PER_MINUTE (each optional)."""
        config: dict[str, Any] = {}
        if os.environ.get("FMP_API_KEY"):
            config["api_key"] = dg.EnvVar("FMP_API_KEY")
        if os.environ.get("FMP_BASE_URL"):
            config["base_url"] = dg.EnvVar("FMP_BASE_URL")
        if os.environ.get("FMP_CALLS_PER_MINUTE"):
            config["calls_per_minute"] = dg.EnvVar.int("FMP_CALLS_PER_MINUTE")
        elif not os.environ.get("FMP_API_KEY"):
            # offline: pace to the offline server's own limit rather than a paid plan's
            from resources.offline_fmp import offline_calls_per_minute

            config["calls_per_minute"] = offline_calls_per_minute()
        return cls(**config)

    def get_client(self) -> FMPClient:
        api_key = resolved(self.api_key) or None
        base_url = resolved(self.base_url) or None
        if base_url is None:
            if api_key:
                base_url = FMP_BASE_URL
            else:
                from resources.offline_fmp import ensure_offline_fmp

                base_url = ensure_offline_fmp()
        if api_key is None:
            from resources.offline_fmp import OFFLINE_API_KEY

            api_key = OFFLINE_API_KEY
        return shared_client(
            base_url,
            api_key,
            calls_per_minute=int(resolved(self.calls_per_minute)),
            max_workers=int(resolved(self.max_workers)),
            connect_timeout=float(resolved(self.connect_timeout)),
            read_timeout=float(resolved(self.read_timeout)),
            max_retries=int(resolved(self.max_retries)),
        )
