"""Run the offline FMP server: ``python -m resources.offline_fmp --port N [knobs]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from resources.offline_fmp.config import PLANS
from resources.offline_fmp.server import make_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m resources.offline_fmp")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--calls-per-minute", type=int, default=3000)
    parser.add_argument("--plan", choices=PLANS, default="premium")
    parser.add_argument("--as-of", default=None, help="YYYY-MM-DD; default: follow today's date")
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(
        opts.port,
        latency_ms=opts.latency_ms,
        calls_per_minute=opts.calls_per_minute,
        plan=opts.plan,
        as_of=opts.as_of,
        seed=opts.seed,
    )
    # stop_service sends SIGTERM: leave serve_forever cleanly instead of dying mid-response
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger(__name__).info("offline FMP server on %s (%s)", server.base_url, server.config.to_json())
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
