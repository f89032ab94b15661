"""The one set of resources both code locations share, built from the environment."""

from __future__ import annotations

from typing import Any

from resources.fmp import FMPResource
from resources.postgres import postgres_from_env
from resources.warehouse import warehouse_from_env


def shared_resources() -> dict[str, Any]:
    return {
        "warehouse": warehouse_from_env(),
        "postgres": postgres_from_env(),
        "fmp": FMPResource.from_env(),
    }
