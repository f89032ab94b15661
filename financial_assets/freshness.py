"""Freshness policies: what people rely on shows as late in the UI.

Windows span a long weekend, so exchange holidays raise no false alarm; statements are rechecked weekly.
"""

from datetime import timedelta

from dagster import FreshnessPolicy

daily = FreshnessPolicy.time_window(fail_window=timedelta(days=4), warn_window=timedelta(hours=30))
weekly = FreshnessPolicy.time_window(fail_window=timedelta(days=10), warn_window=timedelta(days=8))
