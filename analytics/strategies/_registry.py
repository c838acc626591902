"""The strategy registry. Built-ins are TOML files in ``builtin/`` registered through the same
:func:`register_strategy` a user's own strategy (a TOML file or a :class:`StrategyConfig`) goes through."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgeproof.errors import ConfigError

from ._config import StrategyConfig
from ._strategy import Strategy

__all__ = ["get_strategy", "list_strategies", "register_strategy"]

_REGISTRY: dict[str, Strategy] = {}
_FILES: dict[str, Strategy] = {}


def register_strategy(declaration: StrategyConfig | str | Path, *, replace: bool = False) -> Strategy:
    """Register a strategy from a :class:`StrategyConfig` or a TOML file; returns the built Strategy."""
    config = declaration if isinstance(declaration, StrategyConfig) else StrategyConfig.from_toml(declaration)
    if config.name in _REGISTRY and not replace:
        raise ConfigError(f"strategy {config.name!r} is already registered")
    strategy = Strategy(config)
    _REGISTRY[config.name] = strategy
    return strategy


def get_strategy(name_or_toml_path: str | Path | StrategyConfig) -> Strategy:
    """A registered strategy by name, or one loaded from a ``.toml`` file path (cached per path)."""
    if isinstance(name_or_toml_path, StrategyConfig):
        return Strategy(name_or_toml_path)
    text = str(name_or_toml_path)
    found = _REGISTRY.get(text)
    if found is not None:
        return found
    path = Path(text)
    if text.endswith(".toml") or path.is_file():
        key = str(path.resolve())
        if key not in _FILES:
            if not path.is_file():
                raise ConfigError(f"strategy file not found: {text}")
            _FILES[key] = Strategy(StrategyConfig.from_toml(path))
        return _FILES[key]
    raise ConfigError(f"unknown strategy {text!r}", detail=f"known: {', '.join(list_strategies())}; or a .toml file")


def list_strategies() -> list[str]:
    """Registered strategy names, built-ins first in their documented order."""
    return list(_REGISTRY)


BUILTIN_ORDER = ("passthrough", "sorted", "allowlist", "canonical", "breakpoints", "aggressive")


def _register_builtins() -> None:
    folder = resources.files(__package__).joinpath("builtin")
    for name in BUILTIN_ORDER:
        with resources.as_file(folder.joinpath(f"{name}.toml")) as path:
            register_strategy(path)


_register_builtins()
