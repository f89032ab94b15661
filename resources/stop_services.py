"""Stop the embedded services this data folder started (``make stop``)."""

from resources.snowflake_emulator import stop_emulator

if __name__ == "__main__":
    print("snowflake emulator:", "stopped" if stop_emulator() else "not running")
    try:
        from resources.offline_fmp import stop_offline_fmp
    except ImportError:
        pass
    else:
        print("offline FMP server:", "stopped" if stop_offline_fmp() else "not running")
