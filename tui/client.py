"""A typed HTTP client for the appliance API (httpx + the shared msgspec wire types)."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec

from appliance.api.schemas import DocumentList, JobCreated, JobRead, Readiness


class ApplianceClient:
    def __init__(self, base_url: str, key: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def readiness(self) -> Readiness:
        resp = self._http.get("/readyz")
        return msgspec.json.decode(resp.content, type=Readiness)

    def documents(self) -> DocumentList:
        resp = self._http.get("/v1/documents")
        resp.raise_for_status()
        return msgspec.json.decode(resp.content, type=DocumentList)

    def delete_document(self, document_id: str) -> None:
        self._http.delete(f"/v1/documents/{document_id}").raise_for_status()

    def jobs(self) -> list[JobRead]:
        resp = self._http.get("/v1/jobs")
        resp.raise_for_status()
        return msgspec.json.decode(resp.content, type=list[JobRead])

    def upload(self, paths: list[Path]) -> JobCreated:
        handles = [(p.name, p.open("rb")) for p in paths]
        try:
            resp = self._http.post(
                "/v1/documents", files=[("files", (name, fh)) for name, fh in handles]
            )
        finally:
            for _, fh in handles:
                fh.close()
        resp.raise_for_status()
        return msgspec.json.decode(resp.content, type=JobCreated)

    def metrics(self) -> dict[str, float]:
        """The appliance_* samples of /metrics, by full sample name."""
        resp = self._http.get("/metrics")
        resp.raise_for_status()
        values: dict[str, float] = {}
        for line in resp.text.splitlines():
            if line.startswith("appliance_") and " " in line:
                name, value = line.rsplit(" ", 1)
                try:
                    values[name] = float(value)
                except ValueError:
                    continue
        return values
