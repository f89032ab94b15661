"""Helpers for the browser end-to-end test: a `dagster dev` process, its GraphQL API, headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from resources.local_service import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class E2EFailure(AssertionError):
    pass



def _reset_sigint() -> None:
    # a background `dagster dev` inherits SIG_IGN for SIGINT from some shells/CI runners and would then
    # ignore the shutdown signal; restore the default before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DagsterDev:
    """`dagster dev -w <workspace>` (webserver + daemon) on loopback, in its own process group."""

    workspace: Path
    log_path: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "DagsterDev":
        dagster = Path(sys.executable).with_name("dagster")
        cmd = [str(dagster) if dagster.exists() else "dagster", "dev", "-w", str(self.workspace),
               "-h", "127.0.0.1", "-p", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_sigint)
        log.close()
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no dagster dev log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> E2EFailure:
        return E2EFailure(f"{message}\n--- dagster dev log tail ({self.log_path}) ---\n{self.log_tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """Stop the whole process group: SIGINT (dagster dev's clean shutdown), then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            self.proc.wait()
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.25)
            if not _group_alive(pgid):
                break
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    # ---------------------------------------------------------------- GraphQL

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60.0) -> dict[str, Any]:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=timeout)
        if response.status_code != 200:
            raise self.fail(f"GraphQL HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise self.fail(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until(self, what: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
        """Call ``probe`` until it returns something truthy; fail with the log tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise self.fail(f"dagster dev exited with {self.proc.returncode} while waiting for {what}")
            try:
                result = probe()
                if result:
                    return result
            except E2EFailure:
                raise
            except Exception as exc:  # not up yet
                last_error = exc
            time.sleep(interval)
        raise self.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})")

    def locations(self) -> dict[str, str]:
        """Code location name -> load state ('Loaded', 'Loading' or the load error message)."""
        data = self.graphql("""
            { workspaceOrError { __typename
                ... on Workspace { locationEntries { name loadStatus
                    locationOrLoadError { __typename ... on PythonError { message } } } }
                ... on PythonError { message } } }""")
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise self.fail(f"workspace did not load: {workspace}")
        out = {}
        for entry in workspace["locationEntries"]:
            loaded = entry["locationOrLoadError"]
            if entry["loadStatus"] != "LOADED" or loaded is None:
                out[entry["name"]] = "Loading"
            elif loaded["__typename"] == "PythonError":
                out[entry["name"]] = "Error: " + loaded["message"]
            else:
                out[entry["name"]] = "Loaded"
        return out

    def asset_job(self, location: str, asset_path: list[str]) -> str:
        data = self.graphql("""
            query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
                jobNames repository { name location { name } } } }""", {"keys": [{"path": asset_path}]})
        for node in data["assetNodes"]:
            if node["repository"]["location"]["name"] == location:
                jobs = [j for j in node["jobNames"] if j.startswith("__ASSET_JOB")] or node["jobNames"]
                if jobs:
                    return jobs[0]
        raise self.fail(f"asset {'/'.join(asset_path)} not found in code location {location}: {data}")

    def launch_run(self, location: str, asset_paths: list[list[str]], tags: dict[str, str] | None = None) -> str:
        job = self.asset_job(location, asset_paths[0])
        data = self.graphql("""
            mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on PythonError { message stack }
                ... on Error { message } } }""", {"p": {
            "selector": {"repositoryLocationName": location, "repositoryName": "__repository__",
                         "pipelineName": job, "assetSelection": [{"path": p} for p in asset_paths]},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }})
        result = data["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise self.fail(f"run launch failed: {result}")
        return result["run"]["runId"]

    def launch_backfill(self, asset_paths: list[list[str]], partitions: list[str], title: str) -> str:
        data = self.graphql("""
            mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message stack }
                ... on Error { message } } }""", {"p": {
            "assetSelection": [{"path": p} for p in asset_paths], "partitionNames": partitions,
            "fromFailure": False, "title": title}})
        result = data["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise self.fail(f"backfill launch failed: {result}")
        return result["backfillId"]

    def run_status(self, run_id: str) -> str:
        data = self.graphql("query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }",
                            {"id": run_id})
        return data["runOrError"].get("status", data["runOrError"]["__typename"])

    def run_failure_detail(self, run_id: str) -> str:
        data = self.graphql("""
            query($id: ID!) { logsForRun(runId: $id, limit: 2000) { __typename
                ... on EventConnection { events { __typename ... on MessageEvent { message level stepKey } } } } }""",
                            {"id": run_id})
        events = data["logsForRun"].get("events") or []
        bad = [e for e in events if e.get("level") in ("ERROR", "CRITICAL")]
        return "\n".join(f"[{e.get('stepKey')}] {e['message'][:1500]}" for e in bad[-8:]) or "(no error events)"

    def wait_run(self, run_id: str, timeout: float) -> str:
        status = self.wait_until(f"run {run_id}", lambda: (s := self.run_status(run_id)) in FINISHED_RUN and s,
                                 timeout)
        if status != "SUCCESS":
            raise self.fail(f"run {run_id} ended {status}:\n{self.run_failure_detail(run_id)}")
        return status

    def backfill(self, backfill_id: str) -> dict:
        data = self.graphql("""
            query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
                ... on PartitionBackfill { status numPartitions partitionNames
                    runs { runId status tags { key value } } error { message } }
                ... on Error { message } } }""", {"id": backfill_id})
        return data["partitionBackfillOrError"]

    def wait_backfill(self, backfill_id: str, timeout: float) -> dict:
        result = self.wait_until(f"backfill {backfill_id}",
                                 lambda: (b := self.backfill(backfill_id)).get("status") in FINISHED_BACKFILL and b,
                                 timeout, interval=3.0)
        failed = [r for r in result["runs"] if r["status"] != "SUCCESS"]
        if result["status"] not in ("COMPLETED", "COMPLETED_SUCCESS") or failed or not result["runs"]:
            details = "\n".join(f"run {r['runId']} {r['status']}:\n{self.run_failure_detail(r['runId'])}"
                                for r in failed)
            raise self.fail(f"backfill {backfill_id} ended {result['status']} ({result.get('error')}); "
                            f"runs {[(r['runId'], r['status']) for r in result['runs']]}\n{details}")
        return result

    def latest_materialization(self, asset_path: list[str], partition: str | None = None) -> dict | None:
        data = self.graphql("""
            query($key: AssetKeyInput!, $parts: [String!]) { assetOrError(assetKey: $key) { __typename
                ... on Asset { assetMaterializations(partitions: $parts, limit: 1) {
                    runId partition metadataEntries { label __typename } } } } }""",
                            {"key": {"path": asset_path}, "parts": [partition] if partition else None})
        asset = data["assetOrError"]
        materializations = asset.get("assetMaterializations") or []
        return materializations[0] if materializations else None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies of our own children still count as members; treat a group of only zombies as gone
    try:
        out = subprocess.run(["ps", "-e", "-o", "pgid=,stat="], capture_output=True, text=True, timeout=5)
        rows = [line.split() for line in out.stdout.splitlines()]
        return any(len(r) == 2 and r[0] == str(pgid) and not r[1].startswith("Z") for r in rows)
    except Exception:
        return True


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


_GRAPH_RECTS = """() => {
  const svgs = Array.from(document.querySelectorAll('svg'))
    .map(s => [s, s.getBoundingClientRect()]).filter(([s, r]) => r.width * r.height > 0);
  if (!svgs.length) return null;
  const [svg, g] = svgs.reduce((a, b) => (a[1].width * a[1].height >= b[1].width * b[1].height ? a : b));
  const v = svg.parentElement.parentElement.getBoundingClientRect();
  return {g: {x: g.x, y: g.y, w: g.width, h: g.height}, v: {x: v.x, y: v.y, w: v.width, h: v.height}};
}"""


def fit_asset_graph(page, margin: int = 24, max_steps: int = 40) -> dict | None:
    """Zoom the asset graph out (ctrl + wheel) until it fits its viewport, then pan it to the centre.

    The UI's own zoom-to-fit caps the zoom for tall layouts; this measures the rendered SVG instead.
    """
    rects = page.evaluate(_GRAPH_RECTS)
    if not rects:
        return None
    v = rects["v"]
    page.mouse.move(v["x"] + v["w"] / 2, v["y"] + v["h"] / 2)
    for _ in range(max_steps):
        g = rects["g"]
        if g["w"] <= v["w"] - 2 * margin and g["h"] <= v["h"] - 2 * margin:
            break
        page.keyboard.down("Control")
        page.mouse.wheel(0, 40)
        page.keyboard.up("Control")
        page.wait_for_timeout(250)
        rects = page.evaluate(_GRAPH_RECTS)
    for _ in range(8):
        g = rects["g"]
        dx = (v["x"] + (v["w"] - g["w"]) / 2) - g["x"]
        dy = (v["y"] + (v["h"] - g["h"]) / 2) - g["y"]
        if abs(dx) < 4 and abs(dy) < 4:
            break
        page.mouse.wheel(-dx, -dy)
        page.wait_for_timeout(250)
        rects = page.evaluate(_GRAPH_RECTS)
    return rects
