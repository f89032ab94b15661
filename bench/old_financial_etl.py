"""The old financial ETL, reproduced faithfully for the benchmark (never used by the pipeline).

Per symbol, seven steps run one after another: company profile, prices, annual statements,
quarterly statements, TTM, ratios, market metrics. Every step opens a new warehouse connection and
writes one INSERT per row (VARIANT payloads included), as the performance report describes.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import date

from resources.fmp import FMPClient
from resources.warehouse import Warehouse

SCHEMA = "OLD_ETL"
DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE OR REPLACE TABLE {SCHEMA}.COMPANY (SYMBOL VARCHAR, NAME VARCHAR, SECTOR VARCHAR, PAYLOAD VARIANT)",
    f"CREATE OR REPLACE TABLE {SCHEMA}.PRICES (SYMBOL VARCHAR, DATE DATE, OPEN FLOAT, HIGH FLOAT, LOW FLOAT, "
    "CLOSE FLOAT, VOLUME NUMBER(38,0))",
    f"CREATE OR REPLACE TABLE {SCHEMA}.FINANCIALS (SYMBOL VARCHAR, STATEMENT VARCHAR, PERIOD_END DATE, "
    "PERIOD VARCHAR, PAYLOAD VARIANT)",
    f"CREATE OR REPLACE TABLE {SCHEMA}.TTM (SYMBOL VARCHAR, AS_OF DATE, REVENUE FLOAT, NET_INCOME FLOAT, "
    "OPERATING_CASH_FLOW FLOAT)",
    f"CREATE OR REPLACE TABLE {SCHEMA}.RATIOS (SYMBOL VARCHAR, AS_OF DATE, NET_MARGIN FLOAT, ROE FLOAT, "
    "CURRENT_RATIO FLOAT, DEBT_TO_EQUITY FLOAT)",
    f"CREATE OR REPLACE TABLE {SCHEMA}.METRICS (SYMBOL VARCHAR, AS_OF DATE, RETURN_1Y FLOAT, VOLATILITY_1Y FLOAT)",
]


class OldFinancialETL:
    def __init__(self, warehouse: Warehouse, client: FMPClient, start: date, end: date):
        self.warehouse, self.client, self.start, self.end = warehouse, client, start, end
        self.rows = 0
        self.statements = 0

    def create_tables(self) -> None:
        with self.warehouse.get_connection() as conn:
            for sql in DDL:
                conn.cursor().execute(sql)

    def _insert(self, sql: str, rows: list[tuple]) -> None:
        # the old loader: a new connection per step, then one INSERT statement per row
        with self.warehouse.get_connection() as conn:
            cur = conn.cursor()
            for row in rows:
                cur.execute(sql, row)
                self.statements += 1
        self.rows += len(rows)

    def run_symbol(self, symbol: str) -> None:
        for step in (self.company, self.prices, self.annual, self.quarterly, self.ttm, self.ratios, self.metrics):
            step(symbol)

    def company(self, symbol: str) -> None:
        profile = self.client.profile(symbol)
        if profile:
            self._insert(f"INSERT INTO {SCHEMA}.COMPANY SELECT %s, %s, %s, PARSE_JSON(%s)",
                         [(symbol, profile.get("companyName"), profile.get("sector"), json.dumps(profile))])

    def prices(self, symbol: str) -> None:
        bars = self.client.historical_prices(symbol, self.start, self.end)
        self._insert(f"INSERT INTO {SCHEMA}.PRICES VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     [(symbol, b["date"], b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars])

    def _statements(self, symbol: str, period: str) -> None:
        rows = []
        for kind in ("income", "balance", "cashflow"):
            for record in self.client.statements(kind, symbol, period, limit=1000):
                rows.append((symbol, kind, record["date"], record["period"], json.dumps(record)))
        self._insert(f"INSERT INTO {SCHEMA}.FINANCIALS SELECT %s, %s, %s, %s, PARSE_JSON(%s)", rows)

    def annual(self, symbol: str) -> None:
        self._statements(symbol, "annual")

    def quarterly(self, symbol: str) -> None:
        self._statements(symbol, "quarter")

    def _quarters(self, symbol: str, kind: str) -> list[dict]:
        with self.warehouse.get_connection() as conn:
            cur = conn.cursor().execute(
                f"SELECT PAYLOAD FROM {SCHEMA}.FINANCIALS WHERE SYMBOL = %s AND STATEMENT = %s AND PERIOD <> 'FY' "
                "ORDER BY PERIOD_END DESC LIMIT 4", (symbol, kind))
            return [json.loads(row[0]) for row in cur.fetchall()]

    def ttm(self, symbol: str) -> None:
        income, cash = self._quarters(symbol, "income"), self._quarters(symbol, "cashflow")
        if len(income) == 4 and len(cash) == 4:
            self._insert(f"INSERT INTO {SCHEMA}.TTM VALUES (%s, %s, %s, %s, %s)", [(
                symbol, income[0]["date"], sum(q["revenue"] for q in income),
                sum(q["netIncome"] for q in income), sum(q["operatingCashFlow"] for q in cash))])

    def ratios(self, symbol: str) -> None:
        income, balance = self._quarters(symbol, "income"), self._quarters(symbol, "balance")
        if income and balance:
            i, b = income[0], balance[0]
            self._insert(f"INSERT INTO {SCHEMA}.RATIOS VALUES (%s, %s, %s, %s, %s, %s)", [(
                symbol, i["date"], _div(i["netIncome"], i["revenue"]),
                _div(i["netIncome"], b["totalStockholdersEquity"]),
                _div(b["totalCurrentAssets"], b["totalCurrentLiabilities"]),
                _div(b["totalDebt"], b["totalStockholdersEquity"]))])

    def metrics(self, symbol: str) -> None:
        with self.warehouse.get_connection() as conn:
            closes = [row[0] for row in conn.cursor().execute(
                f"SELECT CLOSE FROM {SCHEMA}.PRICES WHERE SYMBOL = %s ORDER BY DATE DESC LIMIT 253", (symbol,)
            ).fetchall()]
        if len(closes) > 2:
            returns = [closes[i] / closes[i + 1] - 1 for i in range(len(closes) - 1)]
            self._insert(f"INSERT INTO {SCHEMA}.METRICS VALUES (%s, %s, %s, %s)", [(
                symbol, self.end.isoformat(), closes[0] / closes[-1] - 1,
                statistics.stdev(returns) * math.sqrt(252))])


def _div(a, b):
    return a / b if b else None
