"""The runtime app's data: read, list, create, update, delete and history of an entity's records.

Every call names its caller: a developer may do everything; a user what its groups allow, per entity
and per field (a field it may not read is left out of answers and may not be queried or written).
Writes go through the records model: one transaction each, conditioned on the version, with the
history entry. Deletes of many records, or by query, run as `DELETE_RECORDS` jobs when asked to. A
delete honours the `on_delete` of the relationships that name the record (`references`): refused
while one names it, or its references cleared by a job after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from backroom.app.actions import ActionRunner, action_of
from backroom.app.definition import Entity
from backroom.app.files import AppFiles
from backroom.app.history import with_entity
from backroom.app.logs import AppLogs, record_line, validation_line
from backroom.app.permissions import EVERYTHING, Access, Gate, Need
from backroom.app.planning import listed_ids, no_record
from backroom.app.querylang import Bound, Query, bind, evaluate, parse
from backroom.app.references import Link, References
from backroom.app.repository import AppRepository
from backroom.app.views import VERSION_BASE, record_view
from backroom.clock import now_ms
from backroom.errors import BackroomError, Forbidden, Invalid, NotFound
from backroom.files import FileStore
from backroom.identity.models import Caller
from backroom.ids import object_id
from backroom.jobs.engine import JobEngine
from backroom.jobs.models import Job, NewJob
from backroom.records import Record, RecordStore
from backroom.records.query import matches, sort_key
from backroom.records.store import Author, Check
from backroom.records.values import file_refs, render_label

SYNC_DELETE_MOST = 1000  # the spec: more than this needs `_async=true`
DELETE_KIND = "runtime.delete_records"
_ID = re.compile(r"^[0-9a-f]{24}$")


class AppData:
    def __init__(self, repo: AppRepository, records: RecordStore, jobs: JobEngine, files: FileStore) -> None:
        self.repo = repo
        self.records = records
        self.jobs = jobs
        self.logs = AppLogs(repo.logs)
        self.actions = ActionRunner(self, repo.action_marks, self.logs)
        self.files = AppFiles(files)
        self.references = References(repo, records, jobs)

    # `PUT /data/{entity}/{segment}` ---------------------------------------------
    def put(
        self,
        caller: Caller,
        name: str,
        segment: str,
        body: Any,
        params: Mapping[str, Any],
        ip: str | None,
        *,
        run_async: bool | None = None,
        origin: str | None = None,
    ) -> Any:
        """An aggregate query, an action over a query, or an update of a record: the entity's metadata decides
        (API Gateway sees one route; an action may not be named `aggregate` nor look like a record id).
        `origin`: where the request came (the dialect's, opaque here), kept by a job that leaves a file."""
        if segment == "export":
            from backroom.app.exports import start_export

            return start_export(self, caller, name, params, ip, origin)
        if segment == "aggregate" and run_async:  # an extension: the pipeline as a job, its answer a file
            from backroom.app.aggregate_job import start_aggregate

            return start_aggregate(self, caller, name, body, ip, origin)
        if segment == "aggregate":
            from backroom.app.aggregate import aggregate  # the pipeline reads records through this service

            return aggregate(self, caller, name, body)
        entity = self.repo.entity(caller.tenant_id, name)
        if action_of(entity, segment) is not None:
            query = {k: v for k, v in params.items() if k not in ("_async", "_lowPriority")}
            return self.actions.execute(
                caller, name, segment, ids=None, query=query, body=body, ip=ip, run_async=run_async
            )
        return self.update(caller, name, segment, body, ip)

    # Access ---------------------------------------------------------------
    def gate(self, caller: Caller) -> Gate:
        """The permission gate every path asks (`backroom.app.permissions`)."""
        return Gate.of(self.repo, caller)

    def access(self, caller: Caller, name: str, need: Need) -> Access:
        """The entity `name` as `caller` may use it; 403 when it may not `need` (read, create, ...)."""
        return self.gate(caller).access(name, need)

    # Reading --------------------------------------------------------------
    def get(self, caller: Caller, name: str, rid: str, params: Mapping[str, Any]) -> dict[str, Any]:
        access = self.access(caller, name, "read")
        query = parse({k: v for k, v in params.items() if k.startswith("_")})
        record = self.records.get(caller.tenant_id, access.schema, rid) if _ID.match(rid) else None
        if record is None:
            raise NotFound(f"Record {rid[:40]} of {name} does not exist")
        return self._views(caller, access, [record], query)[0]

    def find(self, caller: Caller, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        access = self.access(caller, name, "read")
        query = access.parse(params)
        bound = access.bind(query)
        records, total, more = self._find(caller.tenant_id, access, query, bound)
        answer: dict[str, Any] = {"total": total}
        answer["offset"] = records[-1].rid if more and records else None
        answer["items"] = self._views(caller, access, records, query)
        return answer

    def _where(self, access: Access, bound: Bound) -> Check | None:
        if bound.rest is None:
            return None
        rest, schema = bound.rest, access.schema
        return lambda r: evaluate(schema, rest, {**r.data, "id": r.rid, "label": r.label})

    def _find(self, tenant_id: str, access: Access, query: Query, bound: Bound) -> tuple[list[Record], int, bool]:
        """A page of matches, how many match in all, and whether more follow."""
        schema, where = access.schema, self._where(access, bound)
        if bound.ids is not None:  # `id=a,b`: read those records, check the rest, order them here
            found = [
                r
                for r in self.records.get_many(tenant_id, schema, [i for i in dict.fromkeys(bound.ids) if _ID.match(i)])
                if matches(schema, r.data, bound.conditions) and (where is None or where(r))
            ]
            found.sort(key=lambda r: sort_key(schema, r.data, r.rid, bound.sort), reverse=bound.sort.descending)
            total, start = len(found), query.offset if isinstance(query.offset, int) else 0
            if isinstance(query.offset, str):  # after that record in this order, whether or not it matches
                mark = self.records.get(tenant_id, schema, query.offset)
                if mark is None:
                    raise Invalid(f"The offset names no record of {schema.name}: {query.offset[:40]}")
                after = sort_key(schema, mark.data, mark.rid, bound.sort)
                found = [
                    r
                    for r in found
                    if (sort_key(schema, r.data, r.rid, bound.sort) < after) == bound.sort.descending
                    and r.rid != mark.rid
                ]
            return found[start : start + query.size], total, start + query.size < len(found)
        cursor, skip = None, 0
        if isinstance(query.offset, str):
            cursor = self.records.cursor_after(tenant_id, schema, bound.conditions, bound.sort, query.offset)
        elif isinstance(query.offset, int):
            skip = query.offset
        page = self.records.find(
            tenant_id,
            schema,
            bound.conditions,
            sort=bound.sort,
            size=query.size,
            cursor=cursor,
            skip=skip,
            where=where,
            counted=True,
        )
        return page.records, page.total or 0, page.cursor is not None

    def view(self, caller: Caller, access: Access, record: Record) -> dict[str, Any]:
        """A record as `caller` may see it."""
        return self._views(caller, access, [record], parse({}))[0]

    def _views(self, caller: Caller, access: Access, records: Sequence[Record], query: Query) -> list[dict[str, Any]]:
        readable = access.readable()
        fields = readable if query.fields is None else [p for p in query.fields if p.split(".")[0] in readable]
        views = [
            record_view(
                access.schema, r.rid, r.version, r.label, r.data, fields=fields, plain=query.format == "plainText"
            )
            for r in records
        ]
        for name in query.fetch:
            if name in fields:
                self._fetch(caller, access, name, views)
        return views

    def _fetch(self, caller: Caller, access: Access, name: str, views: list[dict[str, Any]]) -> None:
        """`_relationshipsToFetch`: the related records inline, as the caller may read them."""
        spec = access.schema.field(name)
        if spec is None or spec.type != "relationship" or not spec.entity:
            return
        try:
            related = access.related(name, "read")  # the same gate: its grants were read once
        except Forbidden:
            return  # the caller sees the {id, label} it already has

        def ids(value: Any) -> list[str]:
            values = value if isinstance(value, list) else [value]
            return [v["id"] for v in values if isinstance(v, dict) and "id" in v]

        wanted = [i for v in views for i in ids(v.get(name))]
        found = {
            r.rid: record_view(related.schema, r.rid, r.version, r.label, r.data, fields=related.readable())
            for r in self.records.get_many(caller.tenant_id, related.schema, list(dict.fromkeys(wanted)))
        }
        for view in views:
            value = view.get(name)
            if isinstance(value, list):
                view[name] = [found.get(v.get("id"), v) for v in value]
            elif isinstance(value, dict):
                view[name] = found.get(str(value.get("id")), value)

    # Writing --------------------------------------------------------------
    def _values(self, access: Access, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Invalid("The body must be a JSON object holding the record's fields")
        access.check_write(body)
        values = {k: v for k, v in body.items() if k not in ("id", "label", "version")}
        if access.entity.updated_field:
            values[access.entity.updated_field] = now_ms()
        return values

    def create(self, caller: Caller, name: str, body: Any, ip: str | None) -> dict[str, Any]:
        access = self.access(caller, name, "create")
        values = self._values(access, body)
        author = Author(caller.email, ip, f"entities.{name}.create")
        record = self._logged(
            caller,
            access,
            "create",
            values,
            ip,
            lambda v: self.records.create(caller.tenant_id, access.schema, v, author=author, rid=object_id()),
        )
        return self._views(caller, access, [record], parse({}))[0]

    def _logged(
        self,
        caller: Caller,
        access: Access,
        action: str,
        values: dict[str, Any],
        ip: str | None,
        write: Callable[[dict[str, Any]], Record],
        label: str = "",
        rid: str | None = None,
    ) -> Record:
        """A record write through the API: its files referenced first (released if it fails), then its note
        on the request's log line, or the line of its failed validation in the request line's place."""
        tenant, name = caller.tenant_id, access.entity.name
        try:
            values, file_ids = self.files.attach(
                tenant,
                access.schema,
                values,
                taker=None if caller.is_developer else caller.email,
                held=lambda: self._held_files(tenant, access, rid),
            )
            taken = self.files.reference(tenant, file_ids)
            try:
                record = write(values)
            except BaseException:
                self.files.release(tenant, taken)
                raise
            self.files.hold(tenant, file_ids, name, record.rid)  # whose readers may share them
        except Invalid as err:
            if err.errors:
                shown = label or render_label(access.schema.label, values if isinstance(values, dict) else {})
                admin = caller.admin_email  # no ip on this line, as the spec's sample prints it
                line = validation_line(name, shown, err.errors, user=caller.email, admin_user=admin, ip=None)
                self.logs.note(tenant, line, replaces=True)
            raise
        line = record_line(
            action, name, record.rid, record.label, user=caller.email, admin_user=caller.admin_email, ip=ip
        )
        self.logs.note(tenant, line)
        return record

    def _held_files(self, tenant_id: str, access: Access, rid: str | None) -> set[str]:
        """The files record `rid` holds in fields the caller reads (none before it exists)."""
        record = self.records.get(tenant_id, access.schema, rid) if rid else None
        if record is None:
            return set()
        return {fid for top, fid in file_refs(access.schema.fields, record.data) if access.may_read(top)}

    def update(self, caller: Caller, name: str, rid: str, body: Any, ip: str | None) -> dict[str, Any]:
        access = self.access(caller, name, "update")
        values = self._values(access, body)
        version = body.get("version") if isinstance(body, dict) else None
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise Invalid("version must be the record's version, a whole number")
        if not _ID.match(rid):
            raise NotFound(f"Record {rid[:40]} of {name} does not exist")
        author = Author(caller.email, ip, f"entities.{name}.update")
        record = self._logged(
            caller,
            access,
            "update",
            values,
            ip,
            lambda v: self.records.update(
                caller.tenant_id,
                access.schema,
                rid,
                v,
                version=None if version is None else version + VERSION_BASE,
                author=author,
            ),
            label=rid,
            rid=rid,
        )
        return self._views(caller, access, [record], parse({}))[0]

    def delete_one(self, caller: Caller, name: str, rid: str, ip: str | None) -> dict[str, Any]:
        access = self.access(caller, name, "delete")
        record = self._delete(caller, access, rid, ip, self.references.links(caller.tenant_id, name))
        return self._views(caller, access, [record], parse({}))[0]

    def _delete(
        self, caller: Caller, access: Access, rid: str, ip: str | None, links: list[Link], *, clear: bool = True
    ) -> Record:
        """Delete one record (a 400 while a refusing relationship names it, or its index is still being
        built); with `clear`, start the job that clears the references to it (`delete_many` starts one for
        all its records). `links`: the relationships to its entity, read once per request."""
        if not _ID.match(rid):
            raise no_record(access.entity.name, rid)
        gate = access.gate or self.gate(caller)
        self.references.check_delete(
            caller.tenant_id, access.entity, rid, links=links, may_see=lambda link: _may_see(gate, link)
        )
        author = Author(caller.email, ip, f"entities.{access.entity.name}.delete")
        try:
            record = self.records.delete(caller.tenant_id, access.schema, rid, author=author)
        except NotFound:  # worded as an async delete's results word it
            raise no_record(access.entity.name, rid) from None
        if clear:
            self.references.deleted(caller.tenant_id, access.entity.name, [rid], links=links)
        line = record_line(
            "delete", access.entity.name, rid, record.label, user=caller.email, admin_user=caller.admin_email, ip=ip
        )
        self.logs.note(caller.tenant_id, line)
        return record

    def delete_many(self, caller: Caller, name: str, rids: Sequence[str], ip: str | None) -> dict[str, Any]:
        """`{id: {status, response | errorMessage}}`, one entry per id, each record with its `entity`
        object, as the spec's sample (a `DELETE_RECORDS` job's results hold the same map)."""
        access = self.access(caller, name, "delete")
        if len(rids) > SYNC_DELETE_MOST:
            raise Invalid(f"At most {SYNC_DELETE_MOST} records are deleted at once; use _async=true for more")
        links = self.references.links(caller.tenant_id, name)
        outcome: dict[str, Any] = {}
        for rid in dict.fromkeys(rids):
            try:
                record = self._delete(caller, access, rid, ip, links, clear=False)
                view = self._views(caller, access, [record], parse({}))[0]
                outcome[rid] = {"status": "ok", "response": with_entity(view, caller.tenant_id, access.entity)}
            except BackroomError as err:  # a record's conflict or absence must not hide the others' outcomes
                outcome[rid] = {"status": "error", "errorMessage": err.message}
        gone = [rid for rid, done in outcome.items() if done["status"] == "ok"]
        self.references.deleted(caller.tenant_id, name, gone, links=links)
        return outcome

    def matching_ids(
        self, caller: Caller, name: str, params: Mapping[str, Any], *, most: int | None = None
    ) -> list[str]:
        """The ids of the records a query matches (for a delete by query), checked against the caller's access."""
        access = self.access(caller, name, "delete")
        query = access.parse(params)
        access.bind(query)
        return self.ids_of(caller.tenant_id, access.entity, query, most=most)

    def ids_of(self, tenant_id: str, entity: Entity, query: Query, *, most: int | None = None) -> list[str]:
        ids: list[str] = []
        for rid in self.iter_ids(tenant_id, entity, query):
            ids.append(rid)
            if most is not None and len(ids) > most:
                break
        return ids

    def iter_ids(self, tenant_id: str, entity: Entity, query: Query) -> Iterator[str]:
        """The ids of the records `query` matches, read as they are needed (a job's plan of any size)."""
        schema = entity.schema
        bound = bind(schema, query)
        where = self._where(Access(entity, EVERYTHING), bound)
        if bound.ids is not None:
            found = self.records.get_many(tenant_id, schema, [i for i in dict.fromkeys(bound.ids) if _ID.match(i)])
            yield from (
                r.rid for r in found if matches(schema, r.data, bound.conditions) and (where is None or where(r))
            )
            return
        yield from self.records.ids(tenant_id, schema, bound.conditions, where=where)

    def delete_query(self, caller: Caller, name: str, params: Mapping[str, Any], ip: str | None) -> dict[str, Any]:
        ids = self.matching_ids(caller, name, params, most=SYNC_DELETE_MOST)
        if len(ids) > SYNC_DELETE_MOST:
            raise Invalid(f"The query matches more than {SYNC_DELETE_MOST} records; delete them with _async=true")
        return self.delete_many(caller, name, ids, ip)

    def delete_async(
        self, caller: Caller, name: str, *, ids: Sequence[str] | None, params: Mapping[str, Any], ip: str | None
    ) -> Job:
        """A DELETE_RECORDS job over `ids`, or over the records the query in `params` matches when it runs."""
        access = self.access(caller, name, "delete")
        query = {k: v for k, v in params.items() if k not in ("_async", "_lowPriority")}
        if ids is None:
            access.bind(access.parse(query))  # a bad query is a 400 now, not a failed job
        params = {
            "entity": name,
            "ids": listed_ids(ids),  # as given, once each: one that names no record is an error entry
            "query": query,
            "user": caller.email,
            "ip": ip,
            "fields": access.readable(),  # what the caller may see of the records in the results
        }
        return self.start_job(caller, DELETE_KIND, "DELETE_RECORDS", f"Delete records of {name}", params)

    def start_job(
        self,
        caller: Caller,
        kind: str,
        job_type: str,
        label: str,
        params: dict[str, Any],
        *,
        job_id: str = "",
        low_priority: bool = False,
    ) -> Job:
        """A runtime job run as `caller`, its id ObjectId-like as the spec's job ids are."""
        spec = NewJob(
            kind=kind,
            type=job_type,
            tenant_id=caller.tenant_id,
            account_id=caller.account_id,
            created_by=caller.user_id,
            created_by_name=caller.name,
            label=label,
            params=params,
            low_priority=low_priority,
        )
        return self.jobs.create(spec, job_id=job_id or object_id())


def _may_see(gate: Gate, link: Link) -> bool:
    """Whether the caller may read the relationship `link` (a refusal names its entity only then)."""
    try:
        return gate.access(link.entity.name, "read").may_read(link.path or link.spec.name)
    except BackroomError:
        return False
