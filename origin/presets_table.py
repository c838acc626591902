"""Presets and policies in a DynamoDB table (``origin serve --presets-table T``), cached per worker.

**The table** (single-table design, on-demand billing when ``origin presets push --create`` makes
it): partition key ``pk`` (``"preset"`` or ``"policy"``), sort key ``sk`` (the preset's name, the
policy's path prefix). Item layouts: :mod:`edgeproof.origin.presets`. A preset is one ``GetItem``; the
policies are one ``Query`` on ``pk = "policy"`` (a deployment has a handful, and every request needs
the one matching its path, so all of them are one cache entry).

**Reading** (:class:`PresetResolver`): each worker keeps what it read in memory for ``--presets-ttl``
seconds (the kernel's LRU, :class:`edgeproof.lru.ByteLru`, bounded to :data:`CACHE_ENTRIES`
entries), absent and malformed items included, so an unknown name costs one read per TTL, not one
per request. Concurrent requests needing the same item share one read (the kernel's
:class:`edgeproof.singleflight.SingleFlight`). boto3 is synchronous: every call runs in a small
thread pool of its own, so the event loop never blocks and a slow table never takes the source
store's threads. A read that has not answered in :data:`FETCH_TIMEOUT` seconds counts as the table
being unreachable (the thread finishes on botocore's own timeouts).

**Precedence and fallback.** A table item wins over the presets file (and the built-ins) of the
same name or prefix; the file is the fallback when the table has no item for it. When the table
cannot be read (endpoint down, throttled, no such table, access denied), a preset the file has is
used and the response says so (``X-Origin-Preset: NAME; from=file-fallback``), the file's policies
apply, and the failure is logged once per retry; a preset the file lacks is a 503
(``presets_unavailable``). The failure is remembered for :data:`RETRY_UNREACHABLE` seconds (at most
the TTL), so an outage costs one slow read per worker per few seconds, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edgeproof.origin.presets import (
    POLICY,
    PRESET,
    PRESET_NAME,
    PolicyRule,
    PresetFile,
    policy_from_item,
    policy_item,
    preset_from_item,
    preset_item,
    sort_rules,
)

from edgeproof import s3
from edgeproof.canonical import Variant
from edgeproof.errors import BadPresetItem, BadRequest, EdgeproofError, PresetsUnavailable, UsageError
from edgeproof.lru import ByteLru
from edgeproof.singleflight import SingleFlight

__all__ = [
    "CACHE_ENTRIES",
    "FETCH_TIMEOUT",
    "RETRY_UNREACHABLE",
    "PresetResolver",
    "PresetsTable",
    "PushResult",
    "Resolved",
    "TableItems",
    "push_presets",
    "read_items",
]

log = logging.getLogger("edgeproof.origin")

#: seconds one table read may take on a request's path before the table counts as unreachable
FETCH_TIMEOUT = 3.0
#: seconds an unreachable table is remembered before the next read tries it again (at most the TTL)
RETRY_UNREACHABLE = 5.0
#: cached reads per worker (presets by name, plus the one policies entry)
CACHE_ENTRIES = 4096
_ENTRY_BYTES = 1  # the LRU is bounded by entries: each is charged one "byte"
#: DynamoDB table names: 3-255 of a-z A-Z 0-9 _ - . (Amazon DynamoDB Developer Guide, "Supported data
#: types and naming rules in Amazon DynamoDB")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


# ------------------------------------------------------------------------------ the table (sync)


def _reason(err: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            return "no such table (make it with: edgeproof origin presets push FILE --table T --create)"
        if code == "AccessDeniedException":
            return "access denied"
        if code in _THROTTLED:
            return "throttled by DynamoDB"
        if code == "ValidationException":
            return f"DynamoDB refused the request: {err.response.get('Error', {}).get('Message', '')}"
    return s3.aws_reason(err, "dynamodb")


class PresetsTable:
    """The presets table through boto3's DynamoDB client (:func:`edgeproof.s3.client`: one per thread,
    its retries, timeouts and ``AWS_ENDPOINT_URL``); every botocore error → PresetsUnavailable."""

    def __init__(self, name: str) -> None:
        if not _TABLE_NAME.fullmatch(name):
            raise UsageError(f"bad presets table name {name!r}",
                             detail="a DynamoDB table name is 3-255 letters, digits, '_', '-' or '.'")
        self.name = name

    @contextlib.contextmanager
    def _boundary(self, action: str) -> Iterator[None]:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error) as err:
            # one line for a command (no detail); the origin answers with its own public detail
            raise PresetsUnavailable(f"cannot {action} presets table {self.name}: {_reason(err)}") from err

    @staticmethod
    def _client() -> Any:
        return s3.client("dynamodb")

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The item (``pk`` = kind, ``sk`` = name) as plain Python values, or None when absent."""
        from boto3.dynamodb.types import TypeDeserializer

        with self._boundary("read"):
            got = self._client().get_item(TableName=self.name, Key={"pk": {"S": kind}, "sk": {"S": name}})
        item = got.get("Item")
        if item is None:
            return None
        des = TypeDeserializer()
        return {k: des.deserialize(v) for k, v in item.items()}

    def query(self, kind: str) -> list[dict[str, Any]]:
        """Every item with ``pk`` = kind, in ``sk`` order (all pages)."""
        from boto3.dynamodb.types import TypeDeserializer

        des = TypeDeserializer()
        out: list[dict[str, Any]] = []
        with self._boundary("read"):
            pages = self._client().get_paginator("query").paginate(
                TableName=self.name, KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": {"S": kind}})
            for page in pages:
                out += [{k: des.deserialize(v) for k, v in item.items()} for item in page.get("Items", [])]
        return out

    def put(self, items: list[dict[str, Any]]) -> None:
        """Write ``items`` (plain values), 25 per BatchWriteItem, unprocessed ones sent again."""
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()
        with self._boundary("write"):
            for i in range(0, len(items), 25):
                requests: list[dict[str, Any]] = [
                    {"PutRequest": {"Item": {k: ser.serialize(v) for k, v in item.items()}}} for item in items[i:i + 25]]
                for attempt in range(8):
                    left = self._client().batch_write_item(RequestItems={self.name: requests})
                    requests = left.get("UnprocessedItems", {}).get(self.name, [])
                    if not requests:
                        break
                    time.sleep(0.05 * 2 ** attempt)  # DynamoDB's advice: back off before resending
                if requests:
                    raise PresetsUnavailable(f"cannot write presets table {self.name}: "
                                             f"{len(requests)} items still unprocessed (throttled)")

    def exists(self) -> bool:
        from botocore.exceptions import ClientError

        with self._boundary("describe"):
            try:
                self._client().describe_table(TableName=self.name)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return False
                raise
        return True

    def create(self) -> None:
        """Make the table (on-demand billing: a presets table is read a few times a minute per worker)
        and wait until it is active."""
        with self._boundary("create"):
            c = self._client()
            c.create_table(
                TableName=self.name, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
            c.get_waiter("table_exists").wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


# ------------------------------------------------------------------------------ push and list


@dataclass(frozen=True, slots=True)
class PushResult:
    table: str
    presets: int
    policies: int
    created: bool


def push_presets(file: PresetFile, table: PresetsTable, *, create: bool = False) -> PushResult:
    """Write the file's own presets (resolved: an item never depends on the file) and its policies.
    Items already in the table under other names stay; one of the same name is replaced."""
    created = False
    if create and not table.exists():
        table.create()
        created = True
    items = [preset_item(name, variant) for name, variant in file.own.items()]
    items += [policy_item(rule) for rule in file.policies]
    table.put(items)
    return PushResult(table.name, len(file.own), len(file.policies), created)


@dataclass(frozen=True, slots=True)
class TableItems:
    """What ``presets list`` shows: every preset and policy item, parsed or with its error."""

    presets: list[tuple[str, Variant | BadPresetItem]]
    policies: list[PolicyRule]

    @property
    def malformed(self) -> int:
        return sum(isinstance(v, BadPresetItem) for _, v in self.presets) + \
            sum(isinstance(r.policy, BadPresetItem) for r in self.policies)


def read_items(table: PresetsTable, file: PresetFile) -> TableItems:
    """Every item of the table, each checked as the origin would (presets built on ``file``'s)."""
    presets: list[tuple[str, Variant | BadPresetItem]] = []
    for item in table.query(PRESET):
        try:
            presets.append((str(item["sk"]), preset_from_item(item, file.presets, table=table.name)))
        except BadPresetItem as err:
            presets.append((str(item["sk"]), err))
    policies = [policy_from_item(item, table=table.name) for item in table.query(POLICY)]
    return TableItems(presets, policies)


# ------------------------------------------------------------------------------ the resolver (async)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one request may use: the presets by name (the table's item for its preset included), where
    its preset came from, and the policy rules (longest prefix first, each with its ``source``)."""

    presets: Mapping[str, Variant]
    preset: tuple[str, str] | None
    policies: tuple[PolicyRule, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    expires: float


def _fresh_error(err: EdgeproofError) -> EdgeproofError:
    """A new instance to raise: a cached exception raised again and again would grow its traceback."""
    return type(err)(err.message, detail=err.detail)


class PresetResolver:
    """The presets and policies one request needs: at once from memory (:meth:`ready`), or through the
    table (:meth:`fetch`). Runs on one event loop (no locks); see the module docstring."""

    def __init__(self, file: PresetFile, table: PresetsTable | None = None, *, ttl: float = 60.0,
                 executor: Executor | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.file = file
        self.table = table
        self.ttl = max(0.0, ttl)
        self.clock = clock
        self.cache: ByteLru[str, _Entry] = ByteLru(CACHE_ENTRIES * _ENTRY_BYTES, lambda _e: _ENTRY_BYTES,
                                                   name="presets")
        self.flight: SingleFlight[Any] = SingleFlight()
        self._own_executor = executor is None and table is not None
        self.executor = executor or (ThreadPoolExecutor(4, thread_name_prefix="presets") if table else None)
        self._fallback = tuple(dataclasses.replace(r, source="file-fallback") for r in file.policies)

    def close(self) -> None:
        if self._own_executor and isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)

    # -------------------------------------------------------------------------- cache

    def _get(self, key: str) -> _Entry | None:
        entry = self.cache.get(key)
        if entry is not None and entry.expires <= self.clock():
            self.cache.discard(key)
            return None
        return entry

    def _put(self, key: str, value: Any, ttl: float) -> None:
        if ttl > 0:
            self.cache.put(key, _Entry(value, self.clock() + ttl))

    # -------------------------------------------------------------------------- the two paths

    def ready(self, name: str | None) -> Resolved | None:
        """The request's presets and policies when nothing needs reading (no table, or fresh entries)."""
        if self.table is None:
            return self._compose(name, None, self.file.policies)
        preset = self._get(f"{PRESET}/{name}") if self._in_table(name) else None
        policies = self._get(POLICY)
        if (self._in_table(name) and preset is None) or policies is None:
            return None
        return self._compose(name, preset.value if preset else None, policies.value)

    def fetch(self, name: str | None) -> tuple[Awaitable[Resolved], bool]:
        """Start the reads the request needs (joining reads in flight); the awaitable gives its Resolved
        (or raises its error), and the flag says whether this call started a read of its own (the
        origin then reads the source alongside; a request that joined leaves that to the first)."""
        led = False
        tasks: dict[str, asyncio.Task[Any]] = {}
        known: dict[str, Any] = {}
        wanted = [(f"{PRESET}/{name}", lambda: self._load_preset(name))] if self._in_table(name) else []
        wanted.append((POLICY, self._load_policies))
        for key, make in wanted:
            entry = self._get(key)
            if entry is not None:
                known[key] = entry.value
                continue
            task, joined = self.flight.run(key, make)
            tasks[key] = task
            led = led or not joined

        async def done() -> Resolved:
            for key, task in tasks.items():
                known[key] = await asyncio.shield(task)
            return self._compose(name, known.get(f"{PRESET}/{name}"), known[POLICY])

        return done(), led

    @staticmethod
    def _in_table(name: str | None) -> bool:
        """Whether ``name`` could be an item's (a name no preset may have is unknown without a read)."""
        return name is not None and PRESET_NAME.fullmatch(name) is not None

    # -------------------------------------------------------------------------- reads

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        assert self.table is not None and self.executor is not None
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args), FETCH_TIMEOUT)
        except TimeoutError as err:
            raise PresetsUnavailable(f"presets table {self.table.name}: no answer within {FETCH_TIMEOUT:g} s",
                                     detail="the presets table cannot be read; retry later") from err

    def _unreachable(self, key: str, err: PresetsUnavailable) -> PresetsUnavailable:
        log.warning("%s; the presets file is the fallback for the next %g s", err.message,
                    min(self.ttl, RETRY_UNREACHABLE))
        self._put(key, err, min(self.ttl, RETRY_UNREACHABLE))
        return err

    async def _load_preset(self, name: str) -> Variant | EdgeproofError | None:
        key = f"{PRESET}/{name}"
        assert self.table is not None
        try:
            item = await self._read(self.table.get, PRESET, name)
        except PresetsUnavailable as err:
            return self._unreachable(key, err)
        value: Variant | EdgeproofError | None = None
        if item is not None:
            try:
                value = preset_from_item(item, self.file.presets, table=self.table.name)
            except BadPresetItem as err:
                log.warning("%s", err.message)
                value = err
        self._put(key, value, self.ttl)
        return value

    async def _load_policies(self) -> tuple[PolicyRule, ...] | PresetsUnavailable:
        assert self.table is not None
        try:
            items = await self._read(self.table.query, POLICY)
        except PresetsUnavailable as err:
            return self._unreachable(POLICY, err)
        rules = [policy_from_item(item, table=self.table.name) for item in items]
        for rule in rules:
            if isinstance(rule.policy, BadPresetItem):
                log.warning("%s", rule.policy.message)
        in_table = {r.prefix for r in rules}
        merged = sort_rules([*(dataclasses.replace(r, source="table") for r in rules),
                             *(r for r in self.file.policies if r.prefix not in in_table)])
        self._put(POLICY, merged, self.ttl)
        return merged

    # -------------------------------------------------------------------------- one request's view

    def _compose(self, name: str | None, preset: Any, policies: Any) -> Resolved:
        rules = self._fallback if isinstance(policies, PresetsUnavailable) else policies
        if name is None:
            return Resolved(self.file.presets, None, rules)
        if isinstance(preset, Variant):
            return Resolved({**self.file.presets, name: preset}, (name, "table"), rules)
        if isinstance(preset, EdgeproofError) and not isinstance(preset, PresetsUnavailable):
            raise _fresh_error(preset)  # a malformed item: 502 naming it, whatever the file has
        if name in self.file.presets:
            source = "file" if preset is None else "file-fallback"
            return Resolved(self.file.presets, (name, source), rules)
        if isinstance(preset, PresetsUnavailable):
            raise PresetsUnavailable(preset.message, detail=f"the presets table cannot be read and the presets file "
                                                            f"has no preset {name!r}; retry later")
        known = ", ".join(sorted(self.file.presets))
        where = f"in the presets table {self.table.name}, nor " if self.table else ""
        raise BadRequest(f"unknown preset {name!r}",
                         detail=f"no preset {name!r} {where}in the presets file or the built-ins ({known})")
