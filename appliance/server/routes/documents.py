"""Upload, list, read and delete documents; follow ingestion jobs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import Meta

from appliance.config.schema import Settings
from appliance.ingest.jobs import Job
from appliance.ingest.names import display_name
from appliance.ingest.service import IngestionService
from appliance.security.audit import CallerAudit
from appliance.security.keys import Role
from appliance.server.errors import field_error, found
from appliance.server.openapi import errors
from appliance.server.reader import Reader
from appliance.store.journal import DocumentRow, Journal
from appliance.wire.documents import ChunkPage, ChunkRead, DocumentList, DocumentRead
from appliance.wire.jobs import FileProgress, JobCreated, JobRead


class UploadForm(msgspec.Struct):
    files: Annotated[list[UploadFile], Meta(min_length=1, max_length=1000)]
    collection: str | None = None  # a name (default: `default`), resolved by the reader


def job_read(job: Job, reader: Reader) -> JobRead:
    return JobRead(
        id=job.id,
        state=job.state.value,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        files_total=len(job.files),
        files_done=sum(1 for f in job.files if f.state.value in ("done", "skipped")),
        files_failed=sum(1 for f in job.files if f.state.value == "failed"),
        chunks_done=sum(f.chunks_done for f in job.files),
        chunks_total=sum(f.chunks_total for f in job.files),
        files=[msgspec.convert(f, FileProgress, from_attributes=True) for f in job.files],
        collection=reader.name_of(job.collection),
    )


def job_created(job: Job) -> JobCreated:
    return JobCreated(job_id=job.id, files=len(job.files), status_url=f"/v1/jobs/{job.id}")


def document_read(row: DocumentRow, reader: Reader) -> DocumentRead:
    """The row's fields, but `source_id` shown as `source`, `meta` decoded and the
    collection by its name."""
    shown = {
        "source": row.source_id, "meta": msgspec.json.decode(row.meta or "{}"),
        "collection": reader.name_of(row.collection),
    }  # fmt: skip
    return msgspec.convert(msgspec.structs.asdict(row) | shown, DocumentRead)


async def readable(journal: Journal, document_id: str, reader: Reader) -> DocumentRow:
    """The document, if it exists and the key reads its collection; else 404 (the same
    404: whether it exists elsewhere does not show)."""
    row = await journal.get(document_id)
    return found(row if row is not None and reader.admits(row.collection) else None,
                 f"document {document_id}")  # fmt: skip


def visible(job: Job | None, reader: Reader) -> Job | None:
    return job if job is not None and reader.admits(job.collection) else None


def _clean_name(raw: str | None, index: int) -> str:
    name = display_name(raw)
    if not name:
        raise field_error(f"files.{index}", "the file has no name")
    return name


class DocumentController(Controller):
    path = "/v1"
    tags = ("documents",)

    @post(
        "/documents", status_code=HTTP_202_ACCEPTED, summary="Upload documents (ingest)",
        opt={"role": Role.INGEST}, responses=errors(400, 404, 413, 415, 503),
    )  # fmt: skip
    async def upload(
        self,
        data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        ingestion: IngestionService,
        settings: Settings,
        reader: Reader,
    ) -> JobCreated:
        """Upload one or more files in the repeatable field `files`
        (.txt .md .html .pdf .docx), into the collection the field `collection` names
        (`default` if none). Answers at once with a job to follow."""
        files = data.files if isinstance(data.files, list) else [data.files]
        if not files:
            raise field_error("files", "at least one file is required")
        limit = settings.server.max_files_per_upload
        if len(files) > limit:
            raise field_error(
                "files", f"at most {limit} files per upload (server.max_files_per_upload)"
            )
        names = [_clean_name(f.filename, i) for i, f in enumerate(files)]
        into = reader.collection(data.collection, "collection")
        job = await ingestion.receive(
            [(n, f.file) for n, f in zip(names, files, strict=True)], into.id
        )
        return job_created(job)

    @get(
        "/documents", summary="List documents (query)", opt={"role": Role.QUERY},
        responses=errors(),
    )  # fmt: skip
    async def list_documents(self, journal: Journal, reader: Reader) -> DocumentList:
        rows = await journal.documents(reader.scope.collections)
        return DocumentList(documents=[document_read(r, reader) for r in rows], total=len(rows))

    @get(
        "/documents/{document_id:str}", summary="Read one document (query)",
        opt={"role": Role.QUERY}, responses=errors(404),
    )  # fmt: skip
    async def get_document(
        self, document_id: str, journal: Journal, reader: Reader
    ) -> DocumentRead:
        """Its metadata; 404 if it does not exist or lies in a collection this key does
        not read (the same answer either way)."""
        return document_read(await readable(journal, document_id, reader), reader)

    @delete(
        "/documents/{document_id:str}", summary="Delete a document and all its chunks (admin)",
        opt={"role": Role.ADMIN}, responses=errors(404),
    )  # fmt: skip
    async def delete_document(
        self, document_id: str, ingestion: IngestionService, audit: CallerAudit
    ) -> None:
        if not await ingestion.delete_document(document_id):
            raise NotFoundException(f"document {document_id} not found")
        audit.record("document_deleted", document_id=document_id)

    @get(
        "/documents/{document_id:str}/chunks",
        summary="Read what the index holds of a document: its chunks, in order (query)",
        opt={"role": Role.QUERY}, responses=errors(400, 404),
    )  # fmt: skip
    async def document_chunks(
        self,
        document_id: str,
        journal: Journal,
        reader: Reader,
        offset: Annotated[int, Parameter(ge=0, description="First chunk index to return.")] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500, description="At most this many.")] = 100,
    ) -> ChunkPage:
        row = await readable(journal, document_id, reader)
        total, rows = await journal.chunk_page(document_id, offset, limit)
        return ChunkPage(
            document_id=document_id, file_name=row.file_name, total=total, offset=offset,
            chunks=[ChunkRead(index=i, text=t, page=p, heading=h) for i, t, p, h in rows],
        )  # fmt: skip

    @post(
        "/documents/{document_id:str}/reindex", status_code=HTTP_202_ACCEPTED,
        summary="Embed and store a document again from its journaled text (ingest)",
        description="After an embedding-model change or to repair the store. The document "
        "stays searchable meanwhile: each chunk's point is replaced in place. The original "
        "file is not kept, so a changed parser needs the file uploaded again.",
        opt={"role": Role.INGEST}, responses=errors(404, 503),
    )  # fmt: skip
    async def reindex_document(
        self,
        document_id: str,
        ingestion: IngestionService,
        audit: CallerAudit,
        journal: Journal,
        reader: Reader,
    ) -> JobCreated:
        await readable(journal, document_id, reader)
        job = found(await ingestion.reindex(document_id), f"document {document_id}")
        audit.record("document_reindexed", document_id=document_id)
        return job_created(job)

    @get(
        "/jobs", summary="List recent ingestion jobs (ingest)", opt={"role": Role.INGEST},
        responses=errors(),
    )  # fmt: skip
    async def list_jobs(self, ingestion: IngestionService, reader: Reader) -> list[JobRead]:
        return [job_read(j, reader) for j in reversed(ingestion.jobs()) if visible(j, reader)]

    @get(
        "/jobs/{job_id:str}", summary="Follow an ingestion job (ingest)",
        opt={"role": Role.INGEST}, responses=errors(404),
    )  # fmt: skip
    async def get_job(self, job_id: str, ingestion: IngestionService, reader: Reader) -> JobRead:
        job = found(visible(ingestion.get(job_id), reader), f"job {job_id}")
        return job_read(job, reader)

    @post(
        "/jobs/{job_id:str}/cancel", status_code=200,
        summary="Cancel an ingestion job (ingest); the job stays listed, cancelled",
        opt={"role": Role.INGEST}, responses=errors(404),
    )  # fmt: skip
    async def cancel_job(
        self, job_id: str, ingestion: IngestionService, audit: CallerAudit, reader: Reader
    ) -> JobRead:
        found(visible(ingestion.get(job_id), reader), f"job {job_id}")
        job = found(await ingestion.cancel(job_id), f"job {job_id}")
        audit.record("job_cancelled", job_id=job_id)
        return job_read(job, reader)


__all__: list[Any] = ["DocumentController"]
