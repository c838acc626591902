"""Cache-key strategies: one declaration (TOML or Python) → a pure request → cache-key function.

Used by the edge emulator on every request, by the replay (:mod:`edgeproof.analytics.replay`) and by the
CloudFront Function exporter. See docs/strategies.md.
"""

from ._config import TRACKING_PARAMS, CanonicalOptions, ParamOptions, StrategyConfig
from ._registry import get_strategy, list_strategies, register_strategy
from ._strategy import KeyResult, Strategy
from .cf_function import export_cf_function

__all__ = [
    "TRACKING_PARAMS",
    "CanonicalOptions",
    "KeyResult",
    "ParamOptions",
    "Strategy",
    "StrategyConfig",
    "export_cf_function",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]
