"""The items of a bulk enqueue: checked, given workflow ids, and encoded as DBOS portable JSON.

:func:`normalize_items` checks every item's shape and names it (a given id, ``<id_prefix><index>``,
``default_id(index)`` or a random UUID); when every id was derived from ``id_prefix`` the returned
:class:`BulkItems` says so (``id_prefix``), so the writer (:mod:`dbos_orchestrator.store.bulk`) knows
the batch is ``<prefix>0`` .. ``<prefix><n-1>`` without comparing its ids again.
:func:`encode_row` writes one item as an element of the writer's JSON array, with the text
``DBOSPortableJSONSerializer`` writes.
"""

from __future__ import annotations

import contextlib
import gc
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from dbos import DBOSPortableJSONSerializer

from dbos_orchestrator.exceptions import DBOSOptionsError, DBOSSerializationError
from dbos_orchestrator.store.existing import indexable_prefix

__all__ = ["ITEM_KEYS", "BulkItem", "BulkItems", "encode_row", "no_gc_pauses", "normalize_items"]

ITEM_KEYS = ("args", "kwargs", "workflow_id")
_ITEM_KEY_SET = frozenset(ITEM_KEYS)
_PORTABLE = DBOSPortableJSONSerializer()


class BulkItem(NamedTuple):
    """One workflow of a batch: its workflow id and its arguments."""

    workflow_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class BulkItems(list[BulkItem]):
    """A batch's items in order, as :func:`normalize_items` made them (not to be changed afterwards).

    :attr:`id_prefix` is the prefix when the ids are exactly ``<prefix>0`` .. ``<prefix><n-1>`` (every
    id derived, at least two items, the prefix not ending in a digit), else None.
    """

    _prefix: tuple[str, int] | None = None  # (prefix, how many items it named)

    @property
    def id_prefix(self) -> str | None:
        known = self._prefix
        if known is None or known[1] != len(self) or self[-1].workflow_id != f"{known[0]}{known[1] - 1}":
            return None  # changed since: the caller compares the ids
        return known[0]


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic GC while a batch is built: it allocates tens of thousands of acyclic
    objects, and in an Airflow process every full collection walks a very large heap (a
    measured ~50 ms per 10,000 items). Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@no_gc_pauses()  # items of a batch: tens of thousands of acyclic objects
def normalize_items(
    items: Iterable[Any], default_id: Callable[[int], str] | None = None, *, id_prefix: str | None = None
) -> BulkItems:
    """Check the shape of every item and give each one a workflow id.

    An item is a mapping with the keys ``args`` (list), ``kwargs`` (dict with string keys)
    and ``workflow_id`` (str), all optional, or a list/tuple meaning just ``args``. Items
    without ``workflow_id`` get ``<id_prefix><index>``, else ``default_id(index)``, else a random UUID.
    Two items with one id are refused.

    :param items: the batch's items.
    :param default_id: the id of an item without one, by its index.
    :param id_prefix: the ids of items without one are this prefix and their index (no call per item).
    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise DBOSOptionsError(f"items must be a list of items, got {type(items).__name__}")
    out = BulkItems()
    append = out.append
    given = 0  # items with their own workflow_id
    for index, item in enumerate(items):
        # Exact-type checks first: isinstance() against the abstract Mapping/Sequence is slow,
        # and this loop runs once per workflow of batches of tens of thousands.
        kind = type(item)
        if kind is list or kind is tuple:  # just the arguments: nothing else to check
            args: Any = item
            kwargs: Any = {}
            workflow_id = None
        else:
            if kind is not dict and not isinstance(item, Mapping):
                raise DBOSOptionsError(
                    f"item {index}: expected a dict with keys {ITEM_KEYS} or a list of arguments, "
                    f"got {type(item).__name__}"
                )
            if not item.keys() <= _ITEM_KEY_SET:
                unknown = sorted(str(k) for k in item if k not in _ITEM_KEY_SET)
                raise DBOSOptionsError(f"item {index}: unknown key(s) {', '.join(unknown)}; valid keys are {ITEM_KEYS}")
            args = item.get("args") or ()
            kwargs = item.get("kwargs") or {}
            if type(args) not in (list, tuple) and (
                isinstance(args, (str, bytes, Mapping)) or not isinstance(args, Sequence)
            ):
                raise DBOSOptionsError(f"item {index}: args must be a list, got {type(args).__name__}")
            if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
                raise DBOSOptionsError(f"item {index}: kwargs must be a dict, got {type(kwargs).__name__}")
            kwargs = dict(kwargs)
            workflow_id = item.get("workflow_id")
        if workflow_id is None:
            if id_prefix is not None:
                workflow_id = f"{id_prefix}{index}"
            else:
                workflow_id = default_id(index) if default_id else str(uuid.uuid4())
        elif type(workflow_id) is not str or not workflow_id:
            raise DBOSOptionsError(f"item {index}: workflow_id must be a non-empty string, got {workflow_id!r}")
        else:
            given += 1
        append(BulkItem(workflow_id, tuple(args), kwargs))
    if given or id_prefix is None:
        _refuse_repeated_ids(out)  # derived ids <prefix><index> are distinct by construction
    elif indexable_prefix(id_prefix, len(out)):
        out._prefix = (id_prefix, len(out))
    return out


def _refuse_repeated_ids(items: list[BulkItem]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if seen.setdefault(item.workflow_id, index) != index:
            raise DBOSOptionsError(
                f"item {index}: workflow_id {item.workflow_id!r} is also the id of item {seen[item.workflow_id]}"
            )


# What DBOSPortableJSONSerializer.serialize does to a str/int/bool/None (it leaves them as they
# are), with one encoder built once: json.dumps builds a new one per call when given options.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ENCODE_STR = json.encoder.encode_basestring  # a JSON string, non-ASCII kept (as ensure_ascii=False)


def _portable_text(value: Any) -> str:
    """``value`` as DBOS portable JSON text; TypeError/ValueError when it has none."""
    kind = type(value)
    if kind is int:  # exactly int: what json writes for it (a bool or an IntEnum is not this type)
        return int.__repr__(value)
    if kind is str:
        return _ENCODE_STR(value)
    if kind is bool or value is None:
        return _ENCODE(value)
    text = _PORTABLE.serialize(value)
    if "NaN" in text or "Infinity" in text:  # json.dumps writes them; Postgres' json rejects them
        json.loads(text, parse_constant=_reject_constant)
    return text


def _portable(value: Any, where: str) -> str:
    """``value`` as DBOS portable JSON text, or an error naming ``where``."""
    try:
        return _portable_text(value)
    except (TypeError, ValueError) as exc:
        raise DBOSSerializationError(
            f"{where} cannot be encoded as portable JSON: {exc}; nothing of the batch was enqueued"
        ) from None


def encode_row(index: int, item: BulkItem) -> str:
    """One item's element of a statement's JSON array: ``[workflow id, [args...], kwargs]``.

    :param index: the item's index in the batch (named by an encoding error).
    :param item: the item.
    """
    try:
        args = ",".join([_portable_text(a) for a in item.args])
        kwargs = _portable_text(item.kwargs) if item.kwargs else "{}"
    except (TypeError, ValueError):
        _encode_portable(index, item)  # again, naming the argument that cannot be encoded
        raise
    return f"[{_ENCODE(item.workflow_id)},[{args}],{kwargs}]"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _encode_portable(index: int, item: BulkItem) -> tuple[list[str], str]:
    """The portable JSON text of each positional argument and of the kwargs of one item."""
    where = f"item {index} ({item.workflow_id})"
    args = [_portable(a, f"{where}: args[{n}]") for n, a in enumerate(item.args)]
    try:
        return args, _portable(item.kwargs, f"{where}: kwargs")
    except DBOSSerializationError:
        for key, value in item.kwargs.items():  # name the culprit
            _portable(value, f"{where}: kwargs[{key!r}]")
        raise
