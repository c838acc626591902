"""The reference origin: aiohttp + pyvips transformer, derivative/source stores, prescale.

The package import is light (no pyvips, no aiohttp): names below load their module on first use,
so ``origin.edge`` and ``origin.stores`` can be used without the transformer.
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
    "FolderStore": "origin.stores",
    "ObjectInfo": "origin.stores",
    "S3Store": "origin.stores",
    "Store": "origin.stores",
    "open_store": "origin.stores",
    "Limits": "origin.limits",
    "OriginConfig": "origin.config",
    "Rendition": "origin.transform",
    "transform": "origin.transform",
    "catalog_keys": "origin.catalog",
    "generate_catalog": "origin.catalog",
    "run_prescale": "origin.prescale",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'origin' has no attribute {name!r}")
