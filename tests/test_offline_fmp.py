"""The offline FMP server over real HTTP: wire format, data semantics, knobs and the detached process."""

from __future__ import annotations

import time
from datetime import date

import pytest
import requests
from fmp_fixtures import (
    AS_OF,
    INVALID_KEY_BODY,
    LIMIT_REACH_BODY,
    SPEC_CASH_FLOW,
    SPEC_CONSTITUENT,
    SPEC_EOD,
    SPEC_INCOME,
    SPEC_PROFILE,
    SPEC_QUOTE,
    STATEMENT_SPECS,
    admin_get,
    admin_post,
    api_get,
    api_json,
    offline_server,
)

from resources.local_service import free_port
from resources.offline_fmp import OFFLINE_API_KEY
from resources.offline_fmp.universe import GICS_SECTORS, companies

INCOME_FLOWS = [f for f in SPEC_INCOME[8:] if f not in ("eps", "epsDiluted", "weightedAverageShsOut",
                                                        "weightedAverageShsOutDil")]
CASH_FLOWS = [f for f in SPEC_CASH_FLOW[8:] if f not in ("cashAtEndOfPeriod", "cashAtBeginningOfPeriod")]


@pytest.fixture(scope="module")
def module_server():
    with offline_server() as server:
        yield server


@pytest.fixture
def server(module_server):
    yield module_server
    admin_post(module_server, "reset")


def statements(server, endpoint: str, symbol: str, period: str = "quarter", limit: int = 1000) -> list[dict]:
    return api_json(server, endpoint, symbol=symbol, period=period, limit=limit)


# --- wire format -------------------------------------------------------------------------------


def test_profile_fields_types_and_derivations(server):
    [profile] = api_json(server, "profile", symbol="AAPL")
    assert list(profile) == SPEC_PROFILE
    [quote] = api_json(server, "quote", symbol="AAPL")
    assert profile["price"] == quote["price"]
    assert profile["range"] == f"{quote['yearLow']:g}-{quote['yearHigh']:g}"
    assert isinstance(profile["fullTimeEmployees"], str) and profile["fullTimeEmployees"].isdigit()
    assert len(profile["cik"]) == 10 and profile["cik"].isdigit()
    assert profile["sector"] in GICS_SECTORS and profile["exchange"] == "NASDAQ"
    assert profile["averageVolume"] > 0 and profile["beta"] > 0
    [latest] = statements(server, "income-statement", "AAPL", limit=1)
    assert profile["marketCap"] == round(profile["price"] * latest["weightedAverageShsOut"])


def test_quote_fields_and_identities(server):
    [quote] = api_json(server, "quote", symbol="MSFT")
    assert list(quote) == SPEC_QUOTE
    assert quote["change"] == pytest.approx(quote["price"] - quote["previousClose"], abs=0.006)
    assert quote["changePercentage"] == pytest.approx(100 * quote["change"] / quote["previousClose"], abs=1e-4)
    low, high = sorted((quote["open"], quote["price"]))
    assert quote["dayLow"] <= low <= high <= quote["dayHigh"]
    assert quote["yearLow"] <= quote["dayLow"] and quote["yearHigh"] >= quote["dayHigh"]
    bars = api_json(server, "historical-price-eod/full", symbol="MSFT", **{"from": "2024-01-01", "to": AS_OF})
    assert quote["price"] == bars[0]["close"] and quote["previousClose"] == bars[1]["close"]
    assert quote["priceAvg50"] == pytest.approx(sum(b["close"] for b in bars[:50]) / 50, abs=1e-3)
    assert quote["yearHigh"] == max(b["high"] for b in bars[:252])


def test_batch_quote_rows_follow_request_and_skip_unknown(server):
    rows = api_json(server, "batch-quote", symbols="AAPL,BRK-B,NOPE,GOOG")
    assert [r["symbol"] for r in rows] == ["AAPL", "BRK-B", "GOOG"]
    assert all(list(r) == SPEC_QUOTE for r in rows)
    assert rows[0] == api_json(server, "quote", symbol="AAPL")[0]


def test_eod_prices_fields_order_window_and_identities(server):
    rows = api_json(server, "historical-price-eod/full", symbol="MMM", **{"from": "2024-06-28", "to": "2024-07-09"})
    assert all(list(r) == SPEC_EOD for r in rows)
    days = [r["date"] for r in rows]
    assert days == sorted(days, reverse=True) and days[0] == "2024-07-09" and days[-1] == "2024-06-28"
    assert "2024-07-04" not in days and all(date.fromisoformat(d).weekday() < 5 for d in days)
    for r in rows:
        assert r["high"] >= max(r["open"], r["close"]) >= min(r["open"], r["close"]) >= r["low"] > 0
        assert r["volume"] > 0 and isinstance(r["volume"], int)
        assert r["change"] == pytest.approx(r["close"] - r["open"], abs=0.006)
        assert r["changePercent"] == pytest.approx(100 * (r["close"] - r["open"]) / r["open"], abs=1e-4)
        assert r["vwap"] == pytest.approx((r["open"] + r["high"] + r["low"] + r["close"]) / 4, abs=1e-4)


def test_eod_full_history_starts_2010_and_ends_at_as_of(server):
    rows = api_json(server, "historical-price-eod/full", symbol="AAPL", **{"from": "2000-01-01", "to": "2030-01-01"})
    assert rows[-1]["date"] == "2010-01-04" and rows[0]["date"] == AS_OF.isoformat()
    default_window = api_json(server, "historical-price-eod/full", symbol="AAPL")
    assert default_window[-1]["date"] >= "2020-09-23"  # FMP truncates to ~5 years without `from`


@pytest.mark.parametrize("endpoint", list(STATEMENT_SPECS))
def test_statement_fields_order_limit_and_period_filter(server, endpoint):
    spec = STATEMENT_SPECS[endpoint]
    default = api_json(server, endpoint, symbol="JPM")
    assert len(default) == 5 and all(r["period"] == "FY" for r in default)
    assert all(list(r) == spec for r in default)
    assert [r["date"] for r in default] == sorted((r["date"] for r in default), reverse=True)
    assert len(api_json(server, endpoint, symbol="JPM", period="annual", limit=2)) == 2
    quarters = statements(server, endpoint, "JPM", limit=5000)
    assert {r["period"] for r in quarters} == {"Q1", "Q2", "Q3", "Q4"}
    assert quarters[-1]["fiscalYear"] == "2014" and quarters[-1]["period"] == "Q1"
    assert [r["date"] for r in quarters] == sorted((r["date"] for r in quarters), reverse=True)
    only_q2 = statements(server, endpoint, "JPM", period="Q2")
    assert only_q2 and {r["period"] for r in only_q2} == {"Q2"}
    assert api_json(server, endpoint, symbol="JPM", period="FY", limit=3) == default[:3]


def test_statement_header_types_and_filing_lags(server):
    quarters = statements(server, "income-statement", "AMZN")
    annual = {r["date"]: r for r in statements(server, "income-statement", "AMZN", period="annual")}
    for row in quarters:
        period_end, filed = date.fromisoformat(row["date"]), date.fromisoformat(row["filingDate"])
        low, high = (30, 60) if row["period"] == "Q4" else (25, 45)
        assert low <= (filed - period_end).days <= high and filed <= AS_OF
        assert row["acceptedDate"].startswith(row["filingDate"] + " ") and len(row["acceptedDate"]) == 19
        assert isinstance(row["fiscalYear"], str) and row["reportedCurrency"] == "USD"
        if row["period"] == "Q4":  # Q4 comes from the 10-K
            assert annual[row["date"]]["filingDate"] == row["filingDate"]


def test_bad_statement_parameters_are_400(server):
    assert api_get(server, "income-statement", symbol="AAPL", period="monthly").status_code == 400
    assert api_get(server, "income-statement", symbol="AAPL", limit="many").status_code == 400
    assert api_get(server, "historical-price-eod/full", symbol="AAPL", to="yesterday").status_code == 400


# --- statement semantics -----------------------------------------------------------------------


def test_balance_sheet_balances(server):
    for symbol in ("AAPL", "BRK-B", "XOM"):
        for period in ("quarter", "annual"):
            for r in statements(server, "balance-sheet-statement", symbol, period):
                assert r["totalAssets"] == r["totalLiabilities"] + r["totalEquity"]
                assert r["totalAssets"] == r["totalLiabilitiesAndTotalEquity"]
                assert r["totalEquity"] == r["totalStockholdersEquity"] + r["minorityInterest"]
                assert r["totalDebt"] == r["shortTermDebt"] + r["longTermDebt"] + r["capitalLeaseObligations"]
                assert r["netDebt"] == r["totalDebt"] - r["cashAndCashEquivalents"]
                assert r["totalAssets"] == r["totalCurrentAssets"] + r["totalNonCurrentAssets"] + r["otherAssets"]
                assert r["cashAndShortTermInvestments"] == r["cashAndCashEquivalents"] + r["shortTermInvestments"]


def test_income_statement_identities(server):
    for r in statements(server, "income-statement", "NVDA") + statements(server, "income-statement", "NVDA", "annual"):
        assert r["grossProfit"] == r["revenue"] - r["costOfRevenue"]
        assert r["operatingIncome"] == r["grossProfit"] - r["operatingExpenses"] == r["ebit"]
        assert r["ebitda"] == r["ebit"] + r["depreciationAndAmortization"]
        assert r["incomeBeforeTax"] == r["operatingIncome"] + r["totalOtherIncomeExpensesNet"]
        assert r["netIncome"] == r["incomeBeforeTax"] - r["incomeTaxExpense"] == r["bottomLineNetIncome"]
        assert r["eps"] == pytest.approx(r["netIncome"] / r["weightedAverageShsOut"], abs=0.0051)
        assert r["weightedAverageShsOutDil"] >= r["weightedAverageShsOut"] > 0


def test_cash_flow_identities_and_links_to_other_statements(server):
    cash = statements(server, "cash-flow-statement", "KO")
    income = {(r["date"], r["period"]): r for r in statements(server, "income-statement", "KO")}
    balance = {(r["date"], r["period"]): r for r in statements(server, "balance-sheet-statement", "KO")}
    for newer, older in zip(cash, cash[1:]):
        assert newer["cashAtBeginningOfPeriod"] == older["cashAtEndOfPeriod"]
    for r in cash:
        assert r["freeCashFlow"] == r["operatingCashFlow"] + r["capitalExpenditure"] and r["capitalExpenditure"] <= 0
        assert r["operatingCashFlow"] == r["netCashProvidedByOperatingActivities"]
        assert r["cashAtEndOfPeriod"] - r["cashAtBeginningOfPeriod"] == r["netChangeInCash"]
        activities = ("netCashProvidedByOperatingActivities", "netCashProvidedByInvestingActivities",
                      "netCashProvidedByFinancingActivities", "effectOfForexChangesOnCash")
        assert r["netChangeInCash"] == sum(r[name] for name in activities)
        key = (r["date"], r["period"])
        assert r["netIncome"] == income[key]["netIncome"]
        assert r["depreciationAndAmortization"] == income[key]["depreciationAndAmortization"]
        assert r["cashAtEndOfPeriod"] == balance[key]["cashAndCashEquivalents"]


def test_four_quarters_sum_to_fiscal_year(server):
    for endpoint, flows in (("income-statement", INCOME_FLOWS), ("cash-flow-statement", CASH_FLOWS)):
        quarters = statements(server, endpoint, "WMT")
        for fy in statements(server, endpoint, "WMT", "annual"):
            four = [q for q in quarters if q["fiscalYear"] == fy["fiscalYear"]]
            assert sorted(q["period"] for q in four) == ["Q1", "Q2", "Q3", "Q4"]
            for name in flows:
                assert fy[name] == sum(q[name] for q in four), (endpoint, fy["fiscalYear"], name)
    quarters = {r["date"]: r for r in statements(server, "balance-sheet-statement", "WMT")}
    for fy in statements(server, "balance-sheet-statement", "WMT", "annual"):
        q4 = quarters[fy["date"]]
        assert q4["period"] == "Q4" and {**q4, "period": "FY"} == fy


def test_fiscal_year_end_months(server):
    expected = {"AAPL": 9, "MSFT": 6, "NVDA": 1, "WMT": 1, "JPM": 12}
    for symbol, month in expected.items():
        annual = statements(server, "income-statement", symbol, "annual")
        assert {date.fromisoformat(r["date"]).month for r in annual} == {month}
        assert all(r["fiscalYear"] == r["date"][:4] for r in annual)


def test_dual_share_classes_share_statements_not_prices(server):
    for a, b in (("GOOGL", "GOOG"), ("FOXA", "FOX"), ("NWSA", "NWS")):
        for endpoint in STATEMENT_SPECS:
            rows_a, rows_b = statements(server, endpoint, a), statements(server, endpoint, b)
            assert [{**r, "symbol": b} for r in rows_a] == rows_b
        profile_a, profile_b = api_json(server, "profile", symbol=a)[0], api_json(server, "profile", symbol=b)[0]
        assert profile_a["cik"] == profile_b["cik"] and profile_a["price"] != profile_b["price"]


def test_unknown_symbol_dot_form_and_comma_list_answer_empty(server):
    for endpoint in ("profile", "quote", "historical-price-eod/full", *STATEMENT_SPECS):
        assert api_json(server, endpoint, symbol="NOPE") == []
        assert api_json(server, endpoint, symbol="AAPL,MSFT") == []
        assert api_json(server, endpoint, symbol="BRK.B") == []
    assert api_json(server, "profile", symbol="BRK-B")[0]["symbol"] == "BRK-B"


def test_determinism_across_server_instances(server):
    with offline_server() as other:
        for endpoint, params in (
            ("profile", {"symbol": "BF-B"}),
            ("batch-quote", {"symbols": "AAPL,MSFT"}),
            ("historical-price-eod/full", {"symbol": "KO", "from": "2015-01-01", "to": "2016-01-01"}),
            ("cash-flow-statement", {"symbol": "KO", "period": "quarter", "limit": 100}),
        ):
            assert api_get(server, endpoint, **params).content == api_get(other, endpoint, **params).content


def test_filings_appear_as_as_of_advances(server):
    window = {"from": "2025-07-01", "to": "2025-12-31"}
    admin_post(server, "config", {"as_of": "2025-07-20"})
    before = statements(server, "income-statement", "JPM")
    prices_before = api_json(server, "historical-price-eod/full", symbol="JPM", **window)
    admin_post(server, "config", {"as_of": "2025-08-20"})
    after = statements(server, "income-statement", "JPM")
    prices_after = api_json(server, "historical-price-eod/full", symbol="JPM", **window)
    assert before[0]["date"] == "2025-03-31" and after[0]["date"] == "2025-06-30"
    assert after[1:] == before  # earlier periods are unchanged
    assert prices_before[0]["date"] == "2025-07-18" and prices_after[0]["date"] == "2025-08-20"
    assert prices_after[-len(prices_before):] == prices_before


def test_earnings_calendar_names_exactly_the_new_filings(server):
    admin_post(server, "config", {"as_of": "2025-08-20"})
    rows = api_json(server, "earnings-calendar", **{"from": "2025-08-14", "to": "2025-08-20"})
    assert rows and list(rows[0]) == ["symbol", "date", "epsActual", "epsEstimated", "revenueActual",
                                      "revenueEstimated", "lastUpdated"]
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
    for row in rows[:20]:
        latest = statements(server, "income-statement", row["symbol"], limit=1)[0]
        assert latest["filingDate"] == row["date"] and latest["eps"] == row["epsActual"]
    reported = {r["symbol"] for r in rows}
    for symbol in ("AAPL", "MSFT", "JPM", "XOM", "KO"):
        latest = statements(server, "income-statement", symbol, limit=1)[0]
        assert (symbol in reported) == ("2025-08-14" <= latest["filingDate"] <= "2025-08-20")
    response = api_get(server, "earnings-calendar", **{"from": "2025-01-01", "to": "2025-08-20"})
    assert response.status_code == 400


def test_history_is_stable_across_a_year_boundary(server):
    window = {"symbol": "GOOG", "from": "2023-06-01", "to": "2024-12-31"}
    later = api_json(server, "historical-price-eod/full", **window)
    admin_post(server, "config", {"as_of": "2024-12-31"})
    assert api_json(server, "historical-price-eod/full", **window) == later


def test_universe_sectors_and_ciks():
    universe = companies()
    assert len(universe) == 503 and "BRK-B" in universe and "BF-B" in universe
    assert all(c.sector in GICS_SECTORS for c in universe.values())
    resolved = {"STE": "Health Care", "AES": "Utilities", "DUK": "Utilities", "EQIX": "Real Estate",
                "PSA": "Real Estate", "GEV": "Industrials", "MCO": "Financials", "MSCI": "Financials",
                "GRMN": "Consumer Discretionary"}
    assert {s: universe[s].sector for s in resolved} == resolved
    ciks = {}
    for company in universe.values():
        ciks.setdefault(company.cik, set()).add(company.symbol)
    shared = {frozenset(symbols) for symbols in ciks.values() if len(symbols) > 1}
    assert shared == {frozenset(p) for p in (("GOOGL", "GOOG"), ("FOXA", "FOX"), ("NWSA", "NWS"))}


def test_sp500_constituents_and_plan_gating(server):
    rows = api_json(server, "sp500-constituent")
    assert len(rows) == 503 and all(list(r) == SPEC_CONSTITUENT for r in rows)
    assert {"BRK-B", "BF-B", "GOOG", "GOOGL"} <= {r["symbol"] for r in rows}
    admin_post(server, "config", {"plan": "starter"})
    denied = api_get(server, "sp500-constituent")
    assert denied.status_code == 402 and denied.json()["Error Message"].startswith("Exclusive Endpoint : ")
    assert api_get(server, "batch-quote", symbols="AAPL").status_code == 200
    admin_post(server, "config", {"plan": "free"})
    assert api_get(server, "batch-quote", symbols="AAPL").status_code == 402


# --- errors and knobs --------------------------------------------------------------------------


def test_authentication(server):
    for key in (None, "wrong-key"):
        response = api_get(server, "profile", key=key, symbol="AAPL")
        assert response.status_code == 401 and response.json() == INVALID_KEY_BODY
    by_query = requests.get(f"{server.base_url}/stable/profile", params={"symbol": "AAPL", "apikey": OFFLINE_API_KEY})
    assert by_query.status_code == 200 and by_query.json()[0]["symbol"] == "AAPL"
    stats = admin_get(server, "stats")
    assert stats["unauthorized"] == 2 and stats["calls"] == 1


def test_unknown_route_and_legacy_paths(server):
    assert api_get(server, "no-such-endpoint").status_code == 404
    legacy = requests.get(f"{server.base_url}/api/v3/profile/AAPL", headers={"apikey": OFFLINE_API_KEY})
    assert legacy.status_code == 403 and "Legacy Endpoint" in legacy.json()["Error Message"]


def test_rate_limit_answers_429_without_retry_after(server):
    admin_post(server, "config", {"calls_per_minute": 3})
    statuses = [api_get(server, "quote", symbol="AAPL") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert statuses[3].json() == LIMIT_REACH_BODY and "Retry-After" not in statuses[3].headers
    admin_get(server, "stats")  # admin routes are neither limited nor counted
    stats = admin_get(server, "stats")
    assert stats["calls"] == 5 and stats["rate_limited"] == 2


def test_sliding_window_frees_up(server):
    admin_post(server, "config", {"calls_per_minute": 120, "rate_window_s": 0.5})  # 1 call per 0.5 s
    assert api_get(server, "quote", symbol="AAPL").status_code == 200
    assert api_get(server, "quote", symbol="AAPL").status_code == 429
    time.sleep(0.6)
    assert api_get(server, "quote", symbol="AAPL").status_code == 200


def test_fault_knobs(server):
    admin_post(server, "config", {"error_rate": 1.0, "seed": 7})
    statuses = {api_get(server, "quote", symbol="AAPL").status_code for _ in range(12)}
    assert statuses <= {502, 503, 504} and len(statuses) > 1
    admin_post(server, "config", {"error_rate": 0.0, "malformed_rate": 1.0})
    malformed = api_get(server, "quote", symbol="AAPL")
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    admin_post(server, "config", {"malformed_rate": 0.0, "error_body_symbols": ["BF.B"]})
    body = api_get(server, "profile", symbol="BF-B")
    assert body.status_code == 200 and "BF-B" in body.json()["Error Message"]
    stats = admin_get(server, "stats")
    assert (stats["server_errors"], stats["malformed"], stats["error_bodies"]) == (12, 1, 1)


def test_fault_sequence_is_seeded(server):
    def run() -> list[int]:
        admin_post(server, "config", {"error_rate": 0.5, "seed": 42})
        return [api_get(server, "quote", symbol="AAPL").status_code for _ in range(10)]

    first = run()
    assert first == run() and 200 in first and set(first) - {200}


def test_latency_knob(server):
    admin_post(server, "config", {"latency_ms": 150, "slow_ms": 100})
    start = time.monotonic()
    api_get(server, "quote", symbol="AAPL")
    assert time.monotonic() - start >= 0.25


def test_duplicate_period_knob(server):
    admin_post(server, "config", {"duplicate_period_symbols": ["MSFT"]})
    rows = api_json(server, "income-statement", symbol="MSFT", period="quarter", limit=3)
    assert rows[0] == rows[1] and rows[2]["date"] < rows[0]["date"] and len(rows) == 3


def test_restatement_changes_latest_period_consistently(server):
    original = statements(server, "income-statement", "NVDA")
    original_cash = statements(server, "cash-flow-statement", "NVDA")
    admin_post(server, "config", {"restated_symbols": {"NVDA": 1}})
    restated = statements(server, "income-statement", "NVDA")
    balance = statements(server, "balance-sheet-statement", "NVDA")
    cash = statements(server, "cash-flow-statement", "NVDA")
    assert restated[1:] == original[1:] and cash[1:] == original_cash[1:]
    latest, before = restated[0], original[0]
    assert (latest["date"], latest["filingDate"]) == (before["date"], before["filingDate"])
    assert latest["revenue"] != before["revenue"] and latest["netIncome"] != before["netIncome"]
    assert latest["grossProfit"] == latest["revenue"] - latest["costOfRevenue"]
    assert cash[0]["netIncome"] == latest["netIncome"]
    assert cash[0]["cashAtEndOfPeriod"] == balance[0]["cashAndCashEquivalents"]
    assert balance[0]["totalAssets"] == balance[0]["totalLiabilitiesAndTotalEquity"]
    admin_post(server, "config", {"restated_symbols": {"NVDA": 2}})
    assert statements(server, "income-statement", "NVDA")[0]["revenue"] not in (latest["revenue"], before["revenue"])


def test_bad_admin_config_is_rejected(server):
    response = requests.post(f"{server.base_url}/_offline/config", json={"plan": "platinum"}, timeout=10)
    assert response.status_code == 400
    response = requests.post(f"{server.base_url}/_offline/config", json={"no_such_knob": 1}, timeout=10)
    assert response.status_code == 400


# --- the detached process ----------------------------------------------------------------------


def test_ensure_offline_fmp_starts_one_detached_server(tmp_path, monkeypatch, server):
    from resources.local_service import port_open
    from resources.offline_fmp import ensure_offline_fmp, stop_offline_fmp

    port = free_port()
    monkeypatch.setenv("PROJECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FMP_OFFLINE_PORT", str(port))
    monkeypatch.setenv("FMP_OFFLINE_AS_OF", AS_OF.isoformat())
    monkeypatch.setenv("FMP_OFFLINE_PLAN", "starter")
    try:
        base_url = ensure_offline_fmp()
        assert base_url == f"http://127.0.0.1:{port}" and ensure_offline_fmp() == base_url
        params = {"symbol": "AAPL", "period": "quarter", "limit": 8}
        key = {"apikey": OFFLINE_API_KEY}
        detached = requests.get(f"{base_url}/stable/income-statement", params=params, headers=key)
        # a separate process (its own hash seed) serves byte-identical data
        assert detached.content == api_get(server, "income-statement", **params).content
        denied = requests.get(f"{base_url}/stable/sp500-constituent", headers=key)
        assert denied.status_code == 402
        config = requests.get(f"{base_url}/_offline/config").json()
        assert (config["plan"], config["as_of"], config["calls_per_minute"]) == ("starter", "2025-09-23", 3000)
    finally:
        assert stop_offline_fmp()
    assert not port_open(port)
