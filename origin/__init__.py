"""The reference origin: aiohttp + pyvips transformer, derivative/source stores, prescale.

The package import is light (no pyvips, no aiohttp): names below load their module on first use,
so ``edgeproof.edge`` and ``edgeproof.origin.stores`` can be used without the transformer.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FolderStore",
    "Limits",
    "ObjectInfo",
    "OriginConfig",
    "Rendition",
    "S3Store",
    "Store",
    "catalog_keys",
    "generate_catalog",
    "open_store",
    "run_prescale",
    "transform",
]

_HOME = {
    "FolderStore": "edgeproof.origin.stores",
    "ObjectInfo": "edgeproof.origin.stores",
    "S3Store": "edgeproof.origin.stores",
    "Store": "edgeproof.origin.stores",
    "open_store": "edgeproof.origin.stores",
    "Limits": "edgeproof.origin.limits",
    "OriginConfig": "edgeproof.origin.config",
    "Rendition": "edgeproof.origin.transform",
    "transform": "edgeproof.origin.transform",
    "catalog_keys": "edgeproof.origin.catalog",
    "generate_catalog": "edgeproof.origin.catalog",
    "run_prescale": "edgeproof.origin.prescale",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'origin' has no attribute {name!r}")
