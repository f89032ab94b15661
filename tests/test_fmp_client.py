"""The FMP client and resource against in-process offline servers over real HTTP (no mocks)."""

from __future__ import annotations

import logging
import time
from datetime import date

import dagster as dg
import pytest
from fmp_fixtures import (
    AS_OF,
    SPEC_INCOME,
    SPEC_PROFILE,
    admin_get,
    admin_post,
    offline_server,
)

from resources.fmp import (
    FMPAuthError,
    FMPClient,
    FMPConnectionError,
    FMPError,
    FMPForbiddenError,
    FMPMalformedResponse,
    FMPPlanError,
    FMPRateLimitError,
    FMPResource,
    FMPServerError,
    classify_error_text,
    from_fmp_symbol,
    redact,
    to_fmp_symbol,
)
from resources.local_service import free_port
from resources.offline_fmp import OFFLINE_API_KEY
from resources.offline_fmp.universe import companies

SECRET_KEY = "sk-LEAKCHECK-0123456789abcdef"
SP500 = [c.symbol for c in companies().values()]


_open_clients: list[FMPClient] = []


def fast_client(server, key: str = OFFLINE_API_KEY, **settings) -> FMPClient:
    """A client with test-sized backoff (tens of milliseconds instead of seconds), closed after the test."""
    settings = {"backoff_initial": 0.02, "backoff_max": 0.3, "max_retries": 6, **settings}
    client = FMPClient(server.base_url, key, **settings)
    _open_clients.append(client)
    return client


@pytest.fixture(scope="module")
def module_server():
    with offline_server() as server:
        yield server


@pytest.fixture
def server(module_server):
    admin_post(module_server, "reset")
    yield module_server
    while _open_clients:
        _open_clients.pop().close()


def test_symbol_forms():
    assert to_fmp_symbol("BRK.B") == "BRK-B" and to_fmp_symbol("AAPL") == "AAPL"
    assert from_fmp_symbol("BRK-B") == "BRK.B" and from_fmp_symbol("BF-B") == "BF.B"


def test_profile_quote_and_symbol_mapping(server):
    client = fast_client(server)
    profile = client.profile("BRK.B")
    assert list(profile) == SPEC_PROFILE and profile["symbol"] == "BRK.B"
    assert client.profile("NOPE") is None and client.quote("NOPE") is None
    assert client.quote("BF.B")["symbol"] == "BF.B"


def test_batch_quote_chunks_of_100(server):
    client = fast_client(server)
    rows = client.batch_quote(SP500 + ["NOPE"])
    assert len(rows) == 503 and rows[0]["symbol"] == SP500[0]
    assert {"BRK.B", "BF.B"} <= {r["symbol"] for r in rows}
    assert admin_get(server, "stats")["by_endpoint"] == {"batch-quote": 6}
    assert client.calls_made == 6


def test_historical_prices_sends_window_and_merges_chunks(server):
    client = fast_client(server)
    window = client.historical_prices("BRK.B", date(2024, 1, 1), date(2024, 1, 31))
    assert window[0]["date"] == "2024-01-31" and window[-1]["date"] == "2024-01-02"
    assert all(r["symbol"] == "BRK.B" for r in window)
    full = client.historical_prices("AAPL", None, AS_OF)  # from 1995: two windows, below FMP's row cap
    assert client.calls_made == 3
    assert full[0]["date"] == AS_OF.isoformat() and full[-1]["date"] == "2010-01-04"
    assert len({r["date"] for r in full}) == len(full)


def test_statements(server):
    client = fast_client(server)
    annual = client.statements("income", "GOOG", "annual", limit=3)
    assert [r["period"] for r in annual] == ["FY"] * 3 and list(annual[0]) == SPEC_INCOME
    assert annual[0]["symbol"] == "GOOG"
    quarters = client.statements("cashflow", "BRK.B", "quarter")
    assert len(quarters) > 40 and quarters[0]["symbol"] == "BRK.B"
    assert client.statements("balance", "NOPE", "quarter") == []
    with pytest.raises(ValueError):
        client.statements("ratios", "AAPL", "annual")
    with pytest.raises(ValueError):
        client.statements("income", "AAPL", "monthly")


def test_sp500_constituents_and_plan_error(server):
    client = fast_client(server)
    rows = client.sp500_constituents()
    assert len(rows) == 503 and "BRK.B" in {r["symbol"] for r in rows}
    admin_post(server, "config", {"plan": "starter"})
    with pytest.raises(FMPPlanError, match="Exclusive Endpoint") as error:
        client.sp500_constituents()
    assert error.value.status == 402 and "/stable/sp500-constituent" in str(error.value)
    assert client.calls_made == 2  # 402 is not retried


def test_map_concurrent_returns_exceptions_per_item(server):
    client = fast_client(server)
    admin_post(server, "config", {"error_body_symbols": ["MSFT"]})
    results = client.map_concurrent(client.profile, ["AAPL", "MSFT", "NOPE", "AAPL"], max_workers=3)
    assert list(results) == ["AAPL", "MSFT", "NOPE"]
    assert results["AAPL"]["symbol"] == "AAPL" and results["NOPE"] is None
    assert isinstance(results["MSFT"], FMPMalformedResponse)


def test_groups_are_handed_over_while_later_groups_still_fetch(server):
    admin_post(server, "config", {"latency_ms": 300})
    client = fast_client(server)
    done: list[str] = []

    def fetch(symbol):
        result = client.quote(symbol)
        done.append(symbol)
        return result

    groups = client.map_concurrent_groups(fetch, [["AAPL"], SP500[:16]], max_workers=4)
    first = next(groups)
    assert list(first) == ["AAPL"] and first["AAPL"]["symbol"] == "AAPL"
    assert len(done) < 17  # the second group is still in flight when the first is handed over
    second = next(groups)
    assert list(second) == list(dict.fromkeys(SP500[:16])) and all(isinstance(r, dict) for r in second.values())
    assert next(groups, None) is None


def test_429_storm_is_ridden_out(server):
    admin_post(server, "config", {"calls_per_minute": 1200, "rate_window_s": 1.0})  # 20 calls per second
    client = fast_client(server, calls_per_minute=100_000, max_retries=10, backoff_max=0.5)
    symbols = SP500[:40]
    results = client.map_concurrent(client.quote, symbols, max_workers=8)
    failures = {s: r for s, r in results.items() if isinstance(r, Exception)}
    assert failures == {}
    stats = admin_get(server, "stats")
    assert stats["rate_limited"] > 0 and client.rate_limited == stats["rate_limited"]
    assert client.calls_made == stats["calls"] == 40 + stats["rate_limited"]


def test_client_limiter_keeps_under_server_limit(server):
    admin_post(server, "config", {"calls_per_minute": 1200, "rate_window_s": 1.0})  # 20 calls per second
    client = fast_client(server, calls_per_minute=600, rate_window_s=1.0)  # 10 calls per second
    start = time.monotonic()
    results = client.map_concurrent(client.quote, SP500[:30], max_workers=8)
    assert all(isinstance(r, dict) for r in results.values())
    assert time.monotonic() - start >= 1.9  # 30 calls at 10 per second
    assert admin_get(server, "stats")["rate_limited"] == 0 and client.rate_limited == 0


def test_5xx_is_retried(server):
    admin_post(server, "config", {"error_rate": 0.3, "seed": 3})
    client = fast_client(server)
    results = client.map_concurrent(client.profile, SP500[:30])
    assert all(isinstance(r, dict) for r in results.values())
    stats = admin_get(server, "stats")
    assert stats["server_errors"] > 0 and client.snapshot()["retries"] == stats["server_errors"]


def test_5xx_after_retries_is_server_error(server):
    admin_post(server, "config", {"error_rate": 1.0})
    client = fast_client(server, max_retries=2)
    with pytest.raises(FMPServerError) as error:
        client.statements("income", "BRK.B", "annual")
    message = str(error.value)
    assert "/stable/income-statement" in message and "BRK.B" in message and error.value.status in (502, 503, 504)
    assert client.calls_made == 3


def test_malformed_bodies(server):
    admin_post(server, "config", {"malformed_rate": 1.0})
    client = fast_client(server, max_retries=2)
    with pytest.raises(FMPMalformedResponse, match=r"not JSON on /stable/profile \(symbol AAPL\)"):
        client.profile("AAPL")
    assert client.calls_made == 3  # a cut-short body is retried
    admin_post(server, "config", {"malformed_rate": 0.3, "seed": 5})
    patient = fast_client(server, max_retries=8)
    results = patient.map_concurrent(patient.quote, SP500[:20])
    assert all(isinstance(r, dict) for r in results.values())


@pytest.mark.parametrize(
    ("text", "expected", "attempts"),
    [
        ("Error processing the request. Please try again later.", FMPMalformedResponse, 1),
        ("Invalid API KEY. Feel free to create a Free API Key.", FMPAuthError, 1),
        ("Premium Query Parameter: 'Special Endpoint : This value set for 'symbol' is not available'", FMPPlanError, 1),
        ("Legacy Endpoint : Due to Legacy endpoints being no longer supported", FMPForbiddenError, 1),
        ("Limit Reach . Please upgrade your plan", FMPRateLimitError, 3),
    ],
)
def test_error_bodies_map_to_typed_errors(server, text, expected, attempts):
    admin_post(server, "config", {"error_body_symbols": {"NVDA": text}})
    client = fast_client(server, max_retries=2)
    with pytest.raises(expected) as error:
        client.profile("NVDA")
    assert type(error.value) is expected
    assert "/stable/profile" in str(error.value) and "NVDA" in str(error.value) and text in str(error.value)
    assert client.calls_made == attempts


def test_classify_error_text():
    assert classify_error_text("Exclusive Endpoint : This endpoint is not available") is FMPPlanError
    assert classify_error_text("Bandwidth Limit Reach . Please upgrade your plan") is FMPRateLimitError
    assert classify_error_text("something else") is None


def test_bad_key_is_auth_error_and_not_retried(server):
    client = fast_client(server, key=SECRET_KEY)
    with pytest.raises(FMPAuthError, match="Invalid API KEY") as error:
        client.profile("AAPL")
    assert error.value.status == 401 and not isinstance(error.value, FMPRateLimitError)
    assert client.calls_made == 1 and admin_get(server, "stats")["unauthorized"] == 1


def test_timeout_is_connection_error(server):
    admin_post(server, "config", {"slow_ms": 800})
    client = fast_client(server, read_timeout=0.2, max_retries=1)
    with pytest.raises(FMPConnectionError, match=r"timed out on /stable/quote \(symbol AAPL\)"):
        client.quote("AAPL")
    assert client.calls_made == 2


def test_api_key_never_leaks_into_errors_or_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "resources.fmp", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[BaseException] = []
    bad_key = fast_client(server, key=SECRET_KEY)
    with pytest.raises(FMPError) as error:
        bad_key.profile("AAPL")
    errors.append(error.value)
    with FMPClient(f"http://127.0.0.1:{free_port()}", SECRET_KEY, max_retries=1, backoff_initial=0.01) as dead:
        with pytest.raises(FMPConnectionError) as error:
            dead.quote("AAPL")
    errors.append(error.value)
    # defence in depth: even a record that does contain the key is rewritten
    logging.getLogger("urllib3.connectionpool").debug("header apikey=%s", SECRET_KEY)
    try:
        raise RuntimeError(f"boom {SECRET_KEY}")
    except RuntimeError:
        logging.getLogger("resources.fmp").exception("wrapped")

    assert caplog.records, "expected urllib3 and client log records"
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    request_lines = [r.getMessage() for r in caplog.records if "GET /stable/" in r.getMessage()]
    assert request_lines
    assert not any("apikey=" in line for line in request_lines)  # the key travels in a header only
    for exc in errors:
        assert SECRET_KEY not in str(exc) and SECRET_KEY not in repr(exc)
        assert SECRET_KEY not in str(exc.__cause__ or "") and SECRET_KEY not in str(exc.__context__ or "")
    assert SECRET_KEY not in caplog.text
    assert "header apikey=***" in caplog.text and "boom ***" in caplog.text
    assert redact(f"x {SECRET_KEY} y") == "x *** y"
    assert SECRET_KEY not in repr(bad_key)


def test_resource_hides_key_and_shares_clients(server, monkeypatch):
    resource = FMPResource(api_key=SECRET_KEY, base_url=server.base_url)
    assert SECRET_KEY not in repr(resource) and SECRET_KEY not in str(resource)
    offline = FMPResource(base_url=server.base_url, calls_per_minute=900)
    client = offline.get_client()
    assert client is offline.get_client() is FMPResource(base_url=server.base_url, calls_per_minute=900).get_client()
    assert client is not FMPResource(base_url=server.base_url, calls_per_minute=901).get_client()
    assert client.profile("AAPL")["symbol"] == "AAPL"
    with pytest.raises(FMPAuthError):
        resource.get_client().profile("AAPL")

    monkeypatch.setenv("FMP_API_KEY", SECRET_KEY)
    monkeypatch.setenv("FMP_BASE_URL", server.base_url)
    monkeypatch.setenv("FMP_CALLS_PER_MINUTE", "321")
    from_env = FMPResource.from_env()
    assert SECRET_KEY not in repr(from_env)
    assert from_env.get_client().calls_per_minute == 321


def test_resource_in_a_dagster_run(server, monkeypatch):
    monkeypatch.setenv("FMP_BASE_URL", server.base_url)
    monkeypatch.delenv("FMP_API_KEY", raising=False)

    @dg.asset
    def aapl_profile(fmp: FMPResource) -> dict:
        return fmp.get_client().profile("AAPL")

    result = dg.materialize([aapl_profile], resources={"fmp": FMPResource.from_env()})
    assert result.success and result.output_for_node("aapl_profile")["symbol"] == "AAPL"


def test_earnings_calendar_is_one_call_for_the_market(server):
    admin_post(server, "config", {"as_of": "2025-08-20"})
    with fast_client(server) as client:
        rows = client.earnings_calendar(date(2025, 7, 1), date(2025, 8, 20))
        assert client.calls_made == 1
    symbols = {row["symbol"] for row in rows}
    assert len(symbols) > 100 and not any("-" in s for s in symbols)  # index form, BRK.B not BRK-B
