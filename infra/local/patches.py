"""Every change the local stack makes to moto and powertools, and the one place that makes them.

The emulator answers like DynamoDB only because of the patches below, and each one leans on how
moto (or powertools) works inside: a new moto could rename, reorder or rework what they replace and
the emulator would then answer wrongly without a word. So `install()` refuses any moto or powertools
version other than the one the patches were written for (`WRITTEN_FOR`, the pins of
constraints.txt), and refuses an attribute whose shape is not the expected one, before it replaces
anything. Called by everything that needs them: the emulator server (`moto_server.py`), the local
Lambda pools (`lambdas.FunctionPool`) and the core tests' in-process moto (tests/core/conftest.py).
`tests/core/test_emulator_differential.py` runs a corpus of the product's DynamoDB operations with
and without them and requires the same answers; run it before moving `WRITTEN_FOR`.

====================================================  ============================================
What is replaced (module: why)                        moto behaviour it fixes (F) or speeds (S)
====================================================  ============================================
DynamoDBBackend.transact_write_items                  S: deep-copies every table it names to roll
  (moto_transactions: undo log of the items the         back (seconds at 20,000 items, the copies
  transaction can write, under one write lock; the      kept for good in `instances_tracked`).
  attributes copied only for an Update, the one         F: two transactions could interleave.
  operation that changes them in place)
moto.dynamodb.models.copy                             S: the table copy above; its deepcopy hands a
  (moto_transactions: `copy` whose deepcopy skips       Table back as it is while the undo log runs.
  Tables during a transaction)
DynamoDBBackend.put_item, update_item, delete_item,   F: moto checks a condition and writes with
  get_item (moto_transactions: under the write lock)    nothing between them; of two writers at one
                                                        version both could win. A read never sees a
                                                        transaction half done.
  update_item also: moto_transactions' `copy` hands     S: moto deep-copies the item for the stream's
  the Item back uncopied for a table with no stream     old image, a fifth of an update's time.
DynamoHandler.transact_get_items                      F: as get_item, for the whole TransactGet.
  (moto_transactions: under the write lock)
Item.__init__ (moto_transactions: DynamoDB's item     S: LimitedSizeDict sums every attribute set so
  size checked once for the whole item, moto's          far on each insert (quadratic, a tenth of an
  limit and error)                                      in-process write; 30% of a 20,500-record seed).
Table.query (moto_queries: narrows the candidates     S: moto sorts every item of the table on each
  to the partition, or the index hash key's items;      Query (1-3 s at 100,000 rows); paging
  a page to what it can reach)                          through a partition cost its size squared.
Table.all_items (moto_queries: answers the narrowed   S: the other half of Table.query's narrowing.
  candidates while Table.query runs)
DynamoHandler.query (moto_queries: marks a plain      S: a COUNT deep-copies every item it counts.
  Select=COUNT)
moto.dynamodb.models.table.copy (moto_queries:        S: the same COUNT copy; a list is handed on
  `copy` whose deepcopy skips lists while counting,     as it is. A projection builds new items: the
  or projecting a Query of the table)                   copy before it was thrown away.
Item.project (moto_queries: top-level strings taken   S: moto turns the whole item into Python and
  straight; moto's way for anything else)               the projection back: most of a keys-only
                                                        Query's time.
DynamoType.__init__ (moto_items: a one-key dict       S: two lists built and two type tests per
  unpacked once; anything else as moto does)            value of every item read or written.
DynamoType.size (moto_items: the same sum over the    S: wraps each map value in a new DynamoType,
  values as they are)                                   copying its nested values level after level
                                                        (a tenth of a 10,000-record job's time).
DynamoType.__hash__, __eq__ (moto_items: a string    S: each goes through cast_value's chain of
  from its value, anything else as moto does)           type tests, on every lookup of an item.
ConditionExpressionParser.parse (moto_items: the      S: a transaction's condition is parsed three
  syntax tree of an expression and its names kept;      times per write, most of what a conditioned
  each request's values put in its leaves, and the      write costs (a different value for each
  condition made from it by moto)                       record's write missed a cache by values).
DepthFirstTraverser.traverse (moto_updates: the       S: each node of each of an update expression's
  processor's map of node types to handlers built       ten checks built it twice: a fifth of a
  once a walk; moto's walk otherwise)                   record's rewrite in a data job.
DynamoResult.execute_result, inherited from           S: moto's model-driven serializer (~15 ms per
  ActionResult (moto_queries: `json.dumps` for item     8-key record of a BatchGetItem answer);
  operations; moto's own way for anything else)         binary values and errors keep moto's way.
DynamoHandler.parse_parameters, inherited (moto_      S: moto's model-driven parser rebuilds what
  queries: `json.loads` for item operations; moto's     json.loads gives (a tenth of a write's time);
  own way for binary values, nulls or anything else)    it changes only binary values and nulls.
moto.dynamodb.responses.dynamo_to_dict (moto_         S: tests each string of an answer against
  queries: strings, numbers, dicts, lists and           datetime, DynamoType and a failing hasattr
  non-binary DynamoTypes turned straight; moto's way    (an AttributeError raised and caught): a
  for anything else)                                    twentieth of a data job's time.
powertools BaseRouter.current_event, lambda_context,  F (powertools, not moto): the request being
  and BaseRouter's metaclass (lambdas: per-thread       resolved lives on one class per process;
  properties)                                           the local pools run requests in threads,
                                                        which would read each other's event.
====================================================  ============================================

Only the emulator and the local pools are touched; the product and its behaviour on AWS do not change.
The DynamoDB patches serve the core tests' in-process moto (10,000-record fixtures; concurrent writers in
test_records.py and test_identity.py) and moto server where the stack falls back to moto's DynamoDB (no
java); where DynamoDB Local serves DynamoDB (`infra/local/dynamodb_local.py`), no request reaches them.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any

# The versions the patches were written and checked for (constraints.txt pins the same).
WRITTEN_FOR = {"moto": "5.2.5", "aws-lambda-powertools": "3.37.0"}

_ABSENT = object()
_lock = threading.RLock()
_originals: list[tuple[Patch, Any]] | None = None  # (patch, the owner's own value before it), once installed


class EmulatorMismatch(RuntimeError):
    """The installed moto or powertools is not what the patches were written for."""


@dataclass(frozen=True)
class Patch:
    """One attribute replaced: where, the shape it must have first, and what replaces it.

    `expects` is `_shape` of the attribute before the patch: a function's parameters (names,
    order, defaults), `module <name>`, `metaclass <name>` or `annotated attribute`. `make` gets the
    value in effect (the owner's or an inherited one) and returns the replacement.
    """

    owner: Any
    name: str
    expects: str
    make: Callable[[Any], Any]

    @property
    def where(self) -> str:
        return f"{getattr(self.owner, '__qualname__', getattr(self.owner, '__name__', self.owner))}.{self.name}"


def check_versions() -> None:
    """Refuse (EmulatorMismatch) any moto or powertools but the versions in `WRITTEN_FOR`."""
    wrong = {name: installed for name, installed in _installed_versions().items() if installed != WRITTEN_FOR[name]}
    if wrong:
        found = ", ".join(f"{name} {version}" for name, version in wrong.items())
        wanted = ", ".join(f"{name}=={WRITTEN_FOR[name]}" for name in wrong)
        raise EmulatorMismatch(
            f"{found} is installed, but the emulator's patches (infra/local/patches.py) were written for {wanted}: "
            "they would answer wrongly without a word. Install the pinned versions (pip install -c constraints.txt "
            "-r requirements.txt), or check every patch of the table in infra/local/patches.py against the new "
            "version, run tests/core/test_emulator*.py, then move WRITTEN_FOR."
        )


def _installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in WRITTEN_FOR}


def install() -> None:
    """Apply every patch, once per process: versions and shapes are checked before anything changes."""
    global _originals
    with _lock:
        if _originals is not None:
            return
        check_versions()
        table = _table()
        shapes = [(p, _shape(p.owner, p.name)) for p in table]
        wrong = [f"{p.where} is {shape!r}, expected {p.expects!r}" for p, shape in shapes if shape != p.expects]
        if wrong:
            raise EmulatorMismatch("the emulator's patches (infra/local/patches.py) do not fit: " + "; ".join(wrong))
        originals: list[tuple[Patch, Any]] = []
        for patch in table:
            originals.append((patch, _own(patch.owner, patch.name)))
            _put(patch.owner, patch.name, patch.make(_effective(patch.owner, patch.name)))
        _originals = originals


def uninstall() -> None:
    """Put every replaced attribute back as it was (the differential test compares moto with and without)."""
    global _originals
    with _lock:
        for patch, original in reversed(_originals or []):
            _put(patch.owner, patch.name, original)
        _originals = None


def installed_now() -> bool:
    return _originals is not None


@contextmanager
def installed() -> Iterator[None]:
    """The patches applied inside the block, and the state before it restored after."""
    before = installed_now()
    install()
    try:
        yield
    finally:
        if not before:
            uninstall()


@contextmanager
def uninstalled() -> Iterator[None]:
    """moto and powertools as they ship inside the block, and the state before it restored after."""
    before = installed_now()
    uninstall()
    try:
        yield
    finally:
        if before:
            install()


def _table() -> tuple[Patch, ...]:
    from infra.local import lambdas, moto_items, moto_queries, moto_transactions, moto_updates

    return (
        *moto_transactions.PATCHES,
        *moto_queries.PATCHES,
        *moto_items.PATCHES,
        *moto_updates.PATCHES,
        *lambdas.PATCHES,
    )


def _own(owner: Any, name: str) -> Any:
    """The owner's own value (`_ABSENT` when it inherits it or has none): what uninstall puts back."""
    return type(owner) if name == "__class__" else vars(owner).get(name, _ABSENT)


def _effective(owner: Any, name: str) -> Any:
    return type(owner) if name == "__class__" else inspect.getattr_static(owner, name, _ABSENT)


def _shape(owner: Any, name: str) -> str:
    """What an attribute is, in the words of `Patch.expects`."""
    value = _effective(owner, name)
    if name == "__class__":
        return f"metaclass {value.__name__}"
    if value is _ABSENT and name not in vars(owner).get("__annotations__", {}):
        return "absent"
    if inspect.ismodule(value):
        return f"module {value.__name__}"
    if inspect.isfunction(value):
        unannotated = [
            p.replace(annotation=inspect.Parameter.empty) for p in inspect.signature(value).parameters.values()
        ]
        return str(inspect.Signature(unannotated))
    if name in vars(owner).get("__annotations__", {}) and not hasattr(type(value), "__get__"):
        return "annotated attribute"  # declared, and at most a plain value assigned (powertools' request state)
    return f"{type(value).__name__} (not a patchable shape)"


def _put(owner: Any, name: str, value: Any) -> None:
    """Set (or, for `_ABSENT`, remove) the owner's own attribute, around any metaclass property."""
    if name == "__class__":
        owner.__class__ = value
    elif value is _ABSENT:
        if name in vars(owner):
            type.__delattr__(owner, name) if isinstance(owner, type) else delattr(owner, name)
    elif isinstance(owner, type):
        type.__setattr__(owner, name, value)
    else:
        setattr(owner, name, value)
