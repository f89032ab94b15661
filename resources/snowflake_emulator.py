"""The embedded Snowflake emulator: fakesnow's HTTP server over one DuckDB store on disk.

One process per data folder serves every connection (a DuckDB file can be opened by one process
only). Clients reach it through the real Snowflake connector with host/port/protocol overrides.
Run directly: ``python -m resources.snowflake_emulator --port N --db-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from resources.local_service import ensure_service, stop_service
from resources.settings import data_dir, env_float, env_int

DEFAULT_PORT = 47651


def state_dir() -> Path:
    return data_dir() / "snowflake"


def emulator_port() -> int:
    return env_int("SNOWFLAKE_EMULATOR_PORT", DEFAULT_PORT)


def ensure_emulator() -> int:
    """Start the emulator for this data folder if it is not running; return its port."""
    sdir = state_dir()
    return ensure_service(
        "snowflake emulator",
        "resources.snowflake_emulator",
        sdir,
        emulator_port(),
        ["--db-dir", str(sdir / "db")],
    )


def stop_emulator() -> bool:
    return stop_service(state_dir())


def connection_args(port: int) -> dict:
    """Connector arguments that point the Snowflake connector at the emulator."""
    return {"host": "127.0.0.1", "port": port, "protocol": "http"}


def serve(port: int, db_dir: Path) -> None:
    import importlib

    import uvicorn
    from fakesnow.instance import FakeSnow

    # fakesnow's package exports a function named ``server`` that shadows the module
    server = importlib.import_module("fakesnow.server")

    db_dir.mkdir(parents=True, exist_ok=True)
    server.shared_fs = FakeSnow(db_path=str(db_dir))
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
    try:
        uvicorn.run(_app(server), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        # a clean stop checkpoints DuckDB so the next start needs no WAL replay
        server.shared_fs.duck_conn.close()


def _app(server):
    """fakesnow's app, with a master token in the login answer.

    Without one the connector's close() gives up before logging out, so sessions (and their
    DuckDB cursors) would pile up in the server and the client's HTTP pool would stay open.

    ``SNOWFLAKE_EMULATOR_LATENCY_MS`` (default 0) delays every login and statement by that much, as a
    remote warehouse's round trip and per-statement overhead do (the benchmarks use it so that
    row-by-row and bulk designs pay what they would pay on Snowflake per statement).
    """
    latency = env_float("SNOWFLAKE_EMULATOR_LATENCY_MS", 0.0) / 1000
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request):
        await asyncio.sleep(latency)
        response = await server.login_request(request)
        body = json.loads(response.body)
        if body.get("success"):
            body["data"]["masterToken"] = body["data"]["token"]
        return JSONResponse(body, status_code=response.status_code)

    async def query(request):
        # fakesnow answers a statement it fails on (e.g. DuckDB's write-write conflict between two
        # transactions) with HTTP 500, which the connector retries forever; Snowflake answers a
        # failed statement with an error body, so the caller gets an error it can act on.
        await asyncio.sleep(latency)
        response = await server.query_request(request)
        if response.status_code < 500:
            return response
        body = json.loads(response.body)
        return JSONResponse({
            "data": {"errorCode": "000603", "sqlState": "XX000"}, "code": "000603",
            "message": body.get("message") or "statement failed in the emulator", "success": False,
        })

    endpoints = {"/session/v1/login-request": login, "/queries/v1/query-request": query}
    routes = [Route(r.path, endpoints[r.path], methods=["POST"]) if r.path in endpoints else r for r in server.routes]
    return Starlette(routes=routes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-dir", type=Path, required=True)
    opts = parser.parse_args()
    serve(opts.port, opts.db_dir)
