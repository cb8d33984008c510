"""A table's schema: typed fields (nested and multi-valued), unique fields, indexes, label, history, shards."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

FieldType = Literal[
    "text",
    "integer",
    "decimal",
    "money",
    "boolean",
    "date",
    "datetime",
    "choice",
    "email",
    "url",
    "group",
    "relationship",
    "file",  # an uploaded file of the app: `{id, name, contentType}`, its id from `POST /files`
]
# Types whose values order as numbers in an index (a date-time is epoch milliseconds, as the runtime spec shows it).
NUMERIC: frozenset[str] = frozenset({"integer", "decimal", "money", "datetime"})
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DEFAULT_SHARDS = 8  # docs/data-model.md "Write sharding": 8 partition keys per table and per index value
MAX_SHARDS = 64
SOURCE_INDEX = "_source"  # built in: the records an import file wrote
# Whose table a schema is: a runtime entity or a gateway custom table. The two never share a key,
# and a lookup names the namespace it looks in (docs/dialects.md "Gateway namespace", docs/security.md
# "Gateway authority").
Namespace = Literal["runtime", "gateway"]
RUNTIME: Namespace = "runtime"
FOLDABLE = ("text", "email", "url", "choice")  # the types whose values `like` compares ignoring case
GATEWAY: Namespace = "gateway"


def table_key(namespace: Namespace, name: str) -> str:
    """A table's name in its items' keys: a gateway table's is `gateway:<name>`, which no entity's can be."""
    return name if namespace == RUNTIME else f"{namespace}:{name}"


class TableField(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    type: FieldType = "text"
    label: str | None = None  # a person's name for the field (and, for a group, its label expression)
    required: bool = False
    unique: bool = False
    multi: bool = False  # a list of values of the type (groups included)
    choices: list[str] = Field(default_factory=list)  # choice: the allowed values
    fields: list[TableField] = Field(default_factory=list)  # group: the fields inside
    entity: str | None = None  # relationship: the table of the related record
    scale: int = Field(default=2, ge=0, le=10)  # money: decimal places kept, exactly
    max_length: int = Field(default=10_000, ge=1, le=100_000)  # text
    # What the app's evolution writes into the records that hold no value when the field becomes required
    # (or is added required) on an entity with records (`backroom.app.evolution`); a create still needs a value.
    default: Any = None
    # relationship: what deleting the related record does to this value (`backroom.app.references`):
    # `clear` removes it (a job, one history entry per record), `refuse` makes the delete a 400 while any
    # record holds it (checked on an index whose `equals` is this field, which the entity must declare).
    on_delete: Literal["clear", "refuse"] = "clear"

    @field_validator("type", mode="before", json_schema_input_type=FieldType | Literal["number"])
    @classmethod
    def _number_is_decimal(cls, value: Any) -> Any:
        return "decimal" if value == "number" else value  # the gateway's tables say "number"

    @model_validator(mode="after")
    def _consistent(self) -> TableField:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice field lists its choices")
        if self.type == "group" and not self.fields:
            raise ValueError(f"{self.name}: a group holds fields")
        if self.type == "relationship" and not self.entity:
            raise ValueError(f"{self.name}: a relationship names its entity")
        if self.on_delete != "clear" and self.type != "relationship":
            raise ValueError(f"{self.name}: only a relationship says what deleting its record does (on_delete)")
        if self.unique and (self.multi or self.type in ("group", "file")):
            raise ValueError(f"{self.name}: only a single plain value can be unique")
        return self

    def child(self, name: str) -> TableField | None:
        return next((f for f in self.fields if f.name == name), None)


class Index(BaseModel):
    """Equality fields in the partition key, one sort field (ordered) and the record id in the sort key."""

    name: str
    equals: list[str] = Field(default_factory=list)
    sort: str | None = None
    # True while a job writes the entries of the records that existed when it was added: every write keeps
    # its entries already, but the planner does not use it until the job marks it ready (`app.evolution`).
    building: bool = False
    # Its text sort field's values case-folded: `like(/v)` (starts with, ignoring case) is one key range of
    # it; it never gives the field's own order, so no sort is read from it.
    folded: bool = False

    def same_as(self, other: Index) -> bool:
        """Whether both hold the same entries (a building index is the index it will be)."""
        return (self.equals, self.sort, self.folded) == (other.equals, other.sort, other.folded)

    @property
    def fields(self) -> list[str]:
        return [*self.equals, *([self.sort] if self.sort else [])]


class Schema(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    fields: list[TableField]
    # A list of field names is the short form: the last one sorts, the ones before it are equalities.
    indexes: list[Index] = Field(default_factory=list)
    label: str | None = None  # the label expression, e.g. "{lastName}, {firstName}"
    history: bool = False
    shards: int = Field(default=DEFAULT_SHARDS, ge=1, le=MAX_SHARDS)
    namespace: Namespace = RUNTIME
    # The app version that last defined the entity (set by `app.evolution`; a definition leaves it out):
    # each history entry records it, and the runtime shows it as the entry's `entityVersion`.
    version: int = Field(default=1, ge=1)

    @property
    def key(self) -> str:
        return table_key(self.namespace, self.name)

    # The JSON Schema (docs/schemas) shows both forms.
    @field_validator("indexes", mode="before", json_schema_input_type=list["Index | list[str]"])
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            {"name": "+".join(v), "equals": v[:-1], "sort": v[-1]} if isinstance(v, list) and v else v for v in value
        ]

    @model_validator(mode="after")
    def _indexes_name_plain_fields(self) -> Schema:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names repeat")
        for index in self.indexes:
            for path in index.fields:
                found = self.field(path)
                if found is None or found.multi or found.type in ("group", "file"):
                    raise ValueError(f"index {index.name}: {path} is not a single plain field")
            sort = self.field(index.sort) if index.sort else None
            if index.folded and (sort is None or sort.type not in FOLDABLE):
                raise ValueError(f"index {index.name}: folded needs a sort field of text ({', '.join(FOLDABLE)})")
        return self

    @model_validator(mode="after")
    def _keys_apart(self) -> Schema:
        if self.namespace == RUNTIME and ":" in self.name:
            raise ValueError(f"{self.name}: a runtime table's name has no colon (a gateway table's key has one)")
        return self

    def field(self, path: str) -> TableField | None:
        """The field at a dotted path (`contactInformation.email`), through single (not multi) groups only."""
        head, _, rest = path.partition(".")
        found = next((f for f in self.fields if f.name == head), None)
        for name in rest.split(".") if rest else []:
            if found is None or found.type != "group" or found.multi:
                return None
            found = found.child(name)
        return found

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def unique_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.unique]

    def index(self, name: str) -> Index | None:
        return next((i for i in self.indexes if i.name == name), None)
