"""Normalisation of FMP records (no services): bad input gets a warning and loses nothing."""

from datetime import datetime

from financial_assets.raw import normalize
from financial_assets.raw.checks import sparkline
from financial_assets.raw.schema import BALANCE, INCOME, column_name

NOW = datetime(2026, 1, 2, 3, 4, 5)


def test_column_names_follow_the_contract():
    assert column_name("revenue") == "REVENUE"
    assert column_name("weightedAverageShsOutDil") == "WEIGHTED_AVERAGE_SHS_OUT_DIL"
    assert column_name("epsDiluted") == "EPS_DILUTED"
    assert column_name("netCashProvidedByOperatingActivities") == "NET_CASH_PROVIDED_BY_OPERATING_ACTIVITIES"
    assert "TOTAL_EQUITY" in INCOME.table.column_names or "TOTAL_EQUITY" in BALANCE.table.column_names


def test_statement_rows_handle_missing_null_garbage_legacy_and_unkeyable_records():
    notes, rejects = normalize.Notes(), []
    records = [
        {"date": "2024-09-28", "symbol": "AAPL", "period": "FY", "fiscalYear": "2024", "cik": "0000320193",
         "filingDate": "2024-11-01", "acceptedDate": "2024-11-01 06:01:36", "revenue": 391035000000,
         "netIncome": None, "eps": "6.11", "epsdiluted": 6.08, "ebit": "n/a", "brandNewField": 42},
        {"date": None, "period": "Q1", "revenue": 1},
        {"date": "2024-06-29", "period": "Q3", "revenue": 1.0, "fiscalYear": 2024},
        {"date": "2024-06-29", "period": "Q3", "revenue": 2.0, "fiscalYear": 2024},
    ]
    rows = normalize.statement_rows(INCOME, "AAPL", records, NOW, notes, rejects)
    assert len(rows) == 3 and len(rejects) == 1
    first = rows[0]
    assert first["REVENUE"] == 391035000000 and first["NET_INCOME"] is None and first["EPS"] == 6.11
    assert first["EPS_DILUTED"] == 6.08  # v3 name mapped
    assert first["EBIT"] is None and first["FISCAL_YEAR"] == 2024 and first["CIK"] == "0000320193"
    assert '"brandNewField":42' in first["PAYLOAD"]
    counts = notes.counts()
    assert any("new fields" in k for k in counts)
    assert any("non-numeric" in k for k in counts)
    assert any("missing" in k for k in counts)
    assert any("duplicate periods" in k for k in counts)
    assert any("without a usable date" in k for k in counts)
    frame = normalize.statement_frame(INCOME, rows)
    assert str(frame["REVENUE"].dtype) == "float64" and frame["ACCEPTED_DATE"].isna().sum() == 2


def test_price_and_profile_rows():
    notes, rejects = normalize.Notes(), []
    rows = normalize.price_rows("BRK.B", [
        {"symbol": "BRK.B", "date": "2025-01-02", "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 10,
         "change": 0.5, "changePercent": 50, "vwap": 1.25},
        {"symbol": "BRK.B", "date": "", "close": 1},
        {"symbol": "BRK.B", "date": "2025-01-03", "close": None},
    ], NOW, notes, rejects)
    assert len(rows) == 2 and len(rejects) == 1 and rows[0]["VOLUME"] == 10
    frame = normalize.price_frame(rows)
    assert str(frame["VOLUME"].dtype) == "Int64"
    profile = normalize.profile_row("BRK.B", {"symbol": "BRK.B", "companyName": "Berkshire", "ipoDate": "",
                                              "isActivelyTrading": True, "mktCap": 5.0}, NOW, notes)
    assert profile["MARKET_CAP"] == 5.0 and profile["IPO_DATE"] is None and profile["COMPANY_NAME"] == "Berkshire"


def test_sparkline():
    line = sparkline([1, 2, 3, 4, 5, 6, 7, 8])
    assert line == "▁▂▃▄▅▆▇█"
    assert len(sparkline(list(range(1000)), width=64)) == 64


def test_ddl_sql_file_matches_the_schema_module():
    from pathlib import Path

    from financial_assets.raw.schema import ddl_script

    text = (Path(__file__).resolve().parent.parent / "financial_assets" / "raw" / "ddl.sql").read_text()
    assert text.split("\n", 1)[1] == ddl_script()


def test_profile_refresh_is_daily_or_spread_over_the_cycle():
    from datetime import timedelta

    from financial_assets.raw.plan import _profile_fresh

    assert _profile_fresh("AAPL", [NOW], NOW, 1) and not _profile_fresh("AAPL", [NOW - timedelta(days=1)], NOW, 1)
    assert not _profile_fresh("AAPL", [], NOW, 7)
    loaded = NOW - timedelta(days=1)
    due_per_day = [sum(not _profile_fresh(f"S{i}", [loaded], loaded + timedelta(days=d), 7) for i in range(700))
                   for d in range(1, 7)]
    assert all(60 <= n <= 140 for n in due_per_day), due_per_day  # ~1/7 of the symbols each day
    assert not _profile_fresh("AAPL", [NOW - timedelta(days=7)], NOW, 7)  # never older than the cycle
