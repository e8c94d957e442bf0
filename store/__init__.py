"""task-history's experience store: domain models and rules (pure) and the storage engine.

Import the façade and the models from here; nothing outside `store/` sees SQL."""

from store.backend import BackendOptions
from store.errors import Conflict, InvalidInput, NotFound, StoreError, StoreUnavailable
from store.rules import Policy
from store.store import Store

__all__ = [
    "BackendOptions",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Policy",
    "Store",
    "StoreError",
    "StoreUnavailable",
]
