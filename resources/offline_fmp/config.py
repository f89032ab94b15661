"""Behaviour knobs of the offline FMP server, settable at construction and via POST /_offline/config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any

from resources.offline_fmp.universe import to_fmp_symbol

PLANS = ("free", "starter", "premium", "ultimate")
# lowest plan that may call an endpoint; the rest are open to every plan (FMP_SPEC §2)
ENDPOINT_PLAN = {"batch-quote": "starter", "sp500-constituent": "premium"}
DEFAULT_ERROR_BODY = "Error processing the request for '{symbol}'. Please try again later."


@dataclass(frozen=True)
class OfflineConfig:
    latency_ms: float = 0.0
    calls_per_minute: int = 3000
    # the sliding window FMP measures calls over; tests shrink it to provoke and clear 429s quickly
    rate_window_s: float = 60.0
    plan: str = "premium"
    as_of: date | None = None  # None: the server's current date
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    error_body_symbols: dict[str, str] = field(default_factory=dict)  # symbol -> "Error Message" text
    slow_ms: float = 0.0
    restated_symbols: dict[str, int] = field(default_factory=dict)
    duplicate_period_symbols: frozenset[str] = frozenset()
    seed: int = 0

    def current_as_of(self) -> date:
        return self.as_of or date.today()

    def calls_per_window(self) -> int:
        return max(1, int(self.calls_per_minute * self.rate_window_s / 60))

    def plan_allows(self, endpoint: str) -> bool:
        required = ENDPOINT_PLAN.get(endpoint)
        return required is None or PLANS.index(self.plan) >= PLANS.index(required)

    def updated(self, **changes: Any) -> "OfflineConfig":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown offline FMP config keys: {sorted(unknown)}")
        return replace(self, **{k: _normalise(k, v) for k, v in changes.items()}).validated()

    def validated(self) -> "OfflineConfig":
        if self.plan not in PLANS:
            raise ValueError(f"plan must be one of {PLANS}, got {self.plan!r}")
        for name in ("error_rate", "malformed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.calls_per_minute < 1 or self.rate_window_s <= 0:
            raise ValueError("calls_per_minute must be >= 1 and rate_window_s > 0")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ValueError("latency_ms and slow_ms must be >= 0")
        return self

    def to_json(self) -> dict:
        data = asdict(self)
        data["as_of"] = self.current_as_of().isoformat()
        data["duplicate_period_symbols"] = sorted(self.duplicate_period_symbols)
        return data


def _normalise(name: str, value: Any) -> Any:
    if name == "as_of":
        return date.fromisoformat(value) if isinstance(value, str) else value
    if name == "error_body_symbols":
        if isinstance(value, dict):
            return {to_fmp_symbol(s): str(m) for s, m in value.items()}
        return {to_fmp_symbol(s): DEFAULT_ERROR_BODY.format(symbol=to_fmp_symbol(s)) for s in value}
    if name == "restated_symbols":
        return {to_fmp_symbol(s): int(v) for s, v in value.items()}
    if name == "duplicate_period_symbols":
        return frozenset(to_fmp_symbol(s) for s in value)
    if name in ("latency_ms", "rate_window_s", "error_rate", "malformed_rate", "slow_ms"):
        return float(value)
    if name in ("calls_per_minute", "seed"):
        return int(value)
    return value


def make_config(**changes: Any) -> OfflineConfig:
    return OfflineConfig().updated(**changes)
