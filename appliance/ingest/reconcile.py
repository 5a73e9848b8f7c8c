"""On start, make the store agree with the journal (which is the truth).

* A delete that a crash interrupted (document `deleting`) is finished.
* Points whose document the journal does not know are removed: they can only be
  left by a crash of an older version, or a store restored apart from its journal.
  Points of a file journaled as `parsed` are kept: its job resumes and completes it.

Unfinished jobs are resumed by the ingestion service itself (`IngestionService.start`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from appliance.domain.protocols import VectorStore
from appliance.observability.metrics import Metrics
from appliance.store.journal import Journal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    deletes_finished: int
    orphan_documents: int
    orphan_points: int


async def reconcile(journal: Journal, store: VectorStore, metrics: Metrics) -> Reconciled:
    deleting = await journal.deleting()
    for document_id in deleting:
        await store.delete_by_document(document_id)
        await journal.forget_document(document_id)
    known = await journal.document_ids()
    counts = await store.document_counts()
    orphans = {d: n for d, n in counts.items() if d not in known}
    if orphans and not known:
        # An empty journal beside a full store is a lost or new journal (a new data dir
        # pointed at a shared Qdrant server), not orphans: never wipe a store for it.
        log.error(
            "the journal knows no document but the store holds %d points of %d documents: "
            "left untouched (restore the journal, or delete the collection by hand)",
            sum(orphans.values()), len(orphans),
        )  # fmt: skip
        orphans = {}
    for document_id in orphans:
        await store.delete_by_document(document_id)
    done = Reconciled(len(deleting), len(orphans), sum(orphans.values()))
    metrics.reconciled.labels("delete_finished").inc(done.deletes_finished)
    metrics.reconciled.labels("orphan_points_removed").inc(done.orphan_points)
    if deleting or orphans:
        log.warning(
            "reconciled the store with the journal: %d interrupted deletes finished, "
            "%d orphan points of %d unknown documents removed",
            done.deletes_finished, done.orphan_points, done.orphan_documents,
        )  # fmt: skip
    return done
