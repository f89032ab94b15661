"""The Dagster UI end to end, in a real browser (Debian's Chromium driven by Playwright; no downloads).

`dagster dev -w workspace.yaml` (webserver + daemon) runs on loopback in its own process group with the
test session's environment (embedded Snowflake emulator, offline FMP server, temp DAGSTER_HOME), and is
stopped by killing the group. The test opens the asset graph, checks both code locations, then through
the GraphQL API the UI itself uses: materializes the universe (creates the symbol partitions), launches
a single-partition run and a 2-partition backfill of `fmp_raw/daily_prices`, and the same for the
conflict detection + PostgreSQL update on SSN prefixes (synthetic visits generated first), waits for
success and screenshots the pages. The instance gets the production pool limits (deploy/pools.yaml).
Last, a canary password in POSTGRES_URL must appear nowhere in the UI, the GraphQL API or the logs.
Screenshots and the dagster dev log go to artifacts/ui/.

    PYTHONPATH=. python -m pytest tests/test_ui_e2e.py      # ~5 min on 2 shared cores
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from resources.local_instance import instance_yaml
from tests.pg_helpers import postgres_url
from tests.ui_helpers import (
    ARTIFACTS,
    ROOT,
    DagsterDev,
    fit_asset_graph,
    launch_chromium,
)

playwright_sync = pytest.importorskip("playwright.sync_api")

LOCATIONS = ("financial_assets", "conflict_assets")
FIN = "financial_assets"
CONFLICT = "conflict_assets"
DETECTION = ["conflicts", "visit_conflicts"]
CONFLICT_SYNC = ["conflicts", "conflictvisitmaps"]
UNIVERSE = ["fmp_raw", "universe"]
PRICES = ["fmp_raw", "daily_prices"]
PREFERRED_SYMBOLS = ("AAPL", "MSFT", "NVDA")

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's /usr/bin/chromium"),
]


CANARY = "e2e-canary-Zq7xK2"


@pytest.fixture(scope="module")
def dagster_dev():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = os.path.join(os.environ["DAGSTER_HOME"], "ui_e2e")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    with open(os.path.join(home, "dagster.yaml"), "w") as handle:
        handle.write(instance_yaml(Path(home)) + "nux:\n  enabled: false\n")
    # the production pool limits (deploy/pools.yaml) on this instance too, so the runs below are
    # throttled by the same pool limits as production (fmp_api = 1)
    from dagster import DagsterInstance

    from resources.pool_limits import apply_pool_limits, load_pool_limits

    with DagsterInstance.from_config(home) as instance:
        apply_pool_limits(instance, load_pool_limits())
    env = {**os.environ, "DAGSTER_HOME": home, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           # the sensors would start the real daily refresh (503 symbols) and detection over all 1,000
           # prefixes at once, holding the pools the runs below need; they are exercised elsewhere
           "PLATFORM_SENSORS_DEFAULT": "stopped",
           # a canary password in the PostgreSQL URL (ignored by the local trust auth): it must never
           # show in the UI, the GraphQL API or the logs
           "POSTGRES_URL": postgres_url(os.environ["POSTGRES_URL"], password=CANARY)}
    server = DagsterDev(workspace=ROOT / "workspace.yaml", log_path=ARTIFACTS / "dagster-dev.log", env=env)
    server.start()
    try:
        server.wait_until("the GraphQL endpoint", lambda: server.graphql("{ version }")["version"], timeout=180)
        server.wait_until("the code locations to finish loading",
                          lambda: (locs := server.locations()) and all(v != "Loading" for v in locs.values()),
                          timeout=300, interval=3.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _page(browser, width: int = 1600, height: int = 1000):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page


def _screenshot(page, name: str) -> None:
    skip = page.get_by_role("button", name="Skip")  # the community sign-up dialog, if nux is on
    if skip.count():
        skip.first.click()
    page.wait_for_timeout(1500)  # let the graph layout / charts settle
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def _asset_names_by_location(server: DagsterDev) -> dict[str, list[str]]:
    data = server.graphql("{ assetNodes { assetKey { path } repository { location { name } } } }")
    out: dict[str, list[str]] = {}
    for node in data["assetNodes"]:
        out.setdefault(node["repository"]["location"]["name"], []).append(node["assetKey"]["path"][-1])
    return out


def test_asset_graph_shows_both_code_locations(dagster_dev, browser):
    locations = dagster_dev.locations()
    assets = _asset_names_by_location(dagster_dev)
    context, page = _page(browser)
    try:
        page.goto(f"{dagster_dev.url}/locations")
        page.get_by_text(FIN, exact=True).first.wait_for()
        locations_text = page.inner_text("body")
        _screenshot(page, "code-locations.png")
    finally:
        context.close()

    # the global asset graph, every group expanded (the UI's Alt+E), zoomed out to fit, on a tall page
    context, page = _page(browser, 1920, 2000)
    shown: dict[str, list[str]] = {}
    try:
        page.goto(f"{dagster_dev.url}/asset-groups")
        page.get_by_text("Global asset lineage").first.wait_for()
        page.get_by_text("fmp_raw", exact=True).first.wait_for(timeout=90_000)
        page.wait_for_timeout(1500)
        page.mouse.click(1200, 300)  # focus the graph canvas for the keyboard shortcut
        page.keyboard.press("Alt+e")
        page.get_by_text("universe", exact=True).first.wait_for(timeout=60_000)
        fit_asset_graph(page)
        _screenshot(page, "asset-graph.png")
        for location, names in assets.items():
            shown[location] = [n for n in sorted(names, key=len)[:5] if page.get_by_text(n, exact=True).count()]
    finally:
        context.close()

    problems = {name: state for name, state in locations.items() if state != "Loaded"}
    missing = [name for name in LOCATIONS if name not in locations]
    if problems or missing:
        raise dagster_dev.fail(f"code locations not loaded: missing {missing}, errors {problems}")
    for name in LOCATIONS:
        assert name in locations_text, f"{name} not shown on the code locations page"
        assert shown.get(name), f"no asset of {name} visible in the asset graph (assets: {assets.get(name)})"


def test_partition_run_and_backfill_succeed(dagster_dev, browser):
    if dagster_dev.locations().get(FIN) != "Loaded":
        raise dagster_dev.fail(f"{FIN} did not load: {dagster_dev.locations().get(FIN)}")
    started = time.monotonic()

    # the universe first: it creates the `sp500_symbols` partitions
    universe_run = dagster_dev.launch_run(FIN, [UNIVERSE])
    dagster_dev.wait_run(universe_run, timeout=240)
    keys = dagster_dev.graphql("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) {
        ... on AssetNode { partitionKeys } } }""", {"k": {"path": PRICES}})["assetNodeOrError"]["partitionKeys"]
    assert len(keys) >= 400, f"expected the S&P 500 symbol partitions, got {len(keys)}"
    symbols = [s for s in PREFERRED_SYMBOLS if s in keys]
    symbols += [s for s in sorted(keys) if s not in symbols][: 3 - len(symbols)]

    # one partition, one run (what "Materialize" on a partition does in the UI)
    single_run = dagster_dev.launch_run(FIN, [PRICES], tags={"dagster/partition": symbols[0]})
    # two partitions as a backfill (what "Materialize selected" over partitions does in the UI)
    backfill_id = dagster_dev.launch_backfill([PRICES], symbols[1:3], title="e2e: two symbols")

    dagster_dev.wait_run(single_run, timeout=300)
    backfill = dagster_dev.wait_backfill(backfill_id, timeout=360)
    assert sorted(backfill["partitionNames"]) == sorted(symbols[1:3])

    for symbol in symbols[:3]:
        record = dagster_dev.latest_materialization(PRICES, symbol)
        assert record is not None and record["partition"] == symbol, f"no materialization of {symbol}: {record}"
    single = dagster_dev.latest_materialization(PRICES, symbols[0])
    assert single["runId"] == single_run and single["metadataEntries"], single

    context, page = _page(browser)
    try:
        page.goto(f"{dagster_dev.url}/runs/{single_run}")
        page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
        _screenshot(page, "run.png")
        page.goto(f"{dagster_dev.url}/runs/b/{backfill_id}")
        page.get_by_text(symbols[1], exact=False).first.wait_for(timeout=60_000)
        _screenshot(page, "backfill.png")
        # the partition's materialization metadata as the UI shows it
        page.goto(f"{dagster_dev.url}/assets/{'/'.join(PRICES)}?view=partitions&partition={symbols[0]}")
        page.get_by_text("rows_written", exact=True).first.wait_for(timeout=60_000)
        _screenshot(page, "asset-partitions.png")
    finally:
        context.close()
    print(f"runs and backfill finished in {time.monotonic() - started:.0f}s")


def test_pool_limits_visible_to_the_ui(dagster_dev):
    limits = dagster_dev.graphql("{ instance { concurrencyLimits { concurrencyKey slotCount } } }")
    shown = {c["concurrencyKey"]: c["slotCount"] for c in limits["instance"]["concurrencyLimits"]}
    from resources.pool_limits import load_pool_limits

    assert {k: shown.get(k) for k in load_pool_limits()} == load_pool_limits()


def _busiest_prefixes(count: int) -> list[str]:
    """Synthetic visit data in the session's warehouse (the one the dagster dev runs use); the SSN
    prefixes with the most caregivers."""
    from conflict_assets.generate import generate
    from resources.warehouse import warehouse_from_env

    with warehouse_from_env().get_connection() as conn:
        cursor = conn.cursor()
        generate(cursor, scale=200, seed=7, visits_per_caregiver=30)
        rows = cursor.execute("SELECT LEFT(SSN, 3) AS P, COUNT(*) FROM VISITS.CAREGIVERS WHERE SSN IS NOT NULL "
                              "GROUP BY P ORDER BY 2 DESC, 1 LIMIT %d" % count).fetchall()
    return [row[0] for row in rows]


def test_conflict_partition_run_and_backfill_succeed(dagster_dev, browser):
    if dagster_dev.locations().get(CONFLICT) != "Loaded":
        raise dagster_dev.fail(f"{CONFLICT} did not load: {dagster_dev.locations().get(CONFLICT)}")
    prefixes = _busiest_prefixes(3)
    assert len(prefixes) == 3, prefixes

    # detection + PostgreSQL update for one SSN prefix in one run, then two prefixes as a backfill
    single_run = dagster_dev.launch_run(CONFLICT, [DETECTION, CONFLICT_SYNC], tags={"dagster/partition": prefixes[0]})
    backfill_id = dagster_dev.launch_backfill([DETECTION, CONFLICT_SYNC], prefixes[1:], title="e2e: two prefixes")
    dagster_dev.wait_run(single_run, timeout=300)
    backfill = dagster_dev.wait_backfill(backfill_id, timeout=360)
    assert sorted(backfill["partitionNames"]) == sorted(prefixes[1:])
    for prefix in prefixes:
        for key in (DETECTION, CONFLICT_SYNC):
            record = dagster_dev.latest_materialization(key, prefix)
            assert record is not None and record["partition"] == prefix, f"{'/'.join(key)} {prefix}: {record}"

    context, page = _page(browser)
    try:
        page.goto(f"{dagster_dev.url}/runs/{single_run}")
        page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
        _screenshot(page, "conflict-run.png")
        page.goto(f"{dagster_dev.url}/runs/b/{backfill_id}")
        page.get_by_text(prefixes[1], exact=False).first.wait_for(timeout=60_000)
        _screenshot(page, "conflict-backfill.png")
    finally:
        context.close()


def test_no_secret_in_the_ui_api_or_logs(dagster_dev, browser):
    """Runs last (after the runs above wrote their logs): the canary password of POSTGRES_URL must not
    appear in any resource's configured values, the resources pages, run logs or the dagster dev log."""
    leaks = []
    for location in LOCATIONS:
        data = dagster_dev.graphql("""query($r: RepositorySelector!) { allTopLevelResourceDetailsOrError(
            repositorySelector: $r) { __typename ... on ResourceDetailsList { results { name
            configuredValues { key value type } } } } }""",
                                   {"r": {"repositoryLocationName": location, "repositoryName": "__repository__"}})
        for resource in data["allTopLevelResourceDetailsOrError"].get("results") or []:
            for value in resource["configuredValues"]:
                if CANARY in value["value"]:
                    leaks.append(f"GraphQL: {location} resource {resource['name']}.{value['key']} ({value['type']})")
        context, page = _page(browser)
        try:
            page.goto(f"{dagster_dev.url}/locations/{location}/resources/postgres")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)
            if CANARY in page.inner_text("body"):
                page.screenshot(path=str(ARTIFACTS / f"secret-leak-{location}.png"))
                leaks.append(f"UI: /locations/{location}/resources/postgres")
        finally:
            context.close()
    runs = dagster_dev.graphql("{ runsOrError(limit: 50) { ... on Runs { results { runId } } } }")
    for run in runs["runsOrError"]["results"]:
        events = dagster_dev.graphql("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) {
            ... on EventConnection { events { ... on MessageEvent { message } } } } }""", {"id": run["runId"]})
        if CANARY in str(events):
            leaks.append(f"run log {run['runId']}")
    if CANARY in dagster_dev.log_path.read_text(errors="replace"):
        leaks.append(f"dagster dev log {dagster_dev.log_path}")
    assert not leaks, "the POSTGRES_URL password is exposed:\n" + "\n".join(leaks)
