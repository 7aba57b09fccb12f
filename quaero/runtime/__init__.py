from quaero.runtime.runtime import Runtime, events_database

__all__ = ["Runtime", "events_database"]
