"""The embedding-model switch as the admin routes see it: which registered model to
switch to, whether it fits beside the running ones, and the switch's progress."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from appliance.domain.errors import ApplianceError
from appliance.ingest.embedding_switch import EmbeddingSwitch, SwitchStatus
from appliance.models.registry import REGISTRY, Registry, RegistryError
from appliance.models.sizing import ModelPlan, SizingPlan, read_gguf_info

MiB = 1024 * 1024


class EmbeddingModels:
    def __init__(
        self,
        models_dir: Path,
        plan: SizingPlan,
        switch: EmbeddingSwitch,
        live_collection: Callable[[], str],
    ) -> None:
        self._directory = models_dir
        self._plan = plan
        self._switch = switch
        self._live_collection = live_collection

    @property
    def collection(self) -> str:
        """The collection search and answers use now (another one after a switch)."""
        return self._live_collection()

    @property
    def status(self) -> SwitchStatus:
        return self._switch.status

    async def switch_to(self, name: str) -> SwitchStatus:
        """Start re-embedding every chunk with registered model `name`, then swap."""
        directory = self._directory
        registry = await asyncio.to_thread(Registry.load, directory)
        entry = registry.models.get(name)
        if entry is None:
            raise ApplianceError(
                f"no embedding model {name!r} is registered (appliance models add FILE)",
                status=404, code="unknown_model", field="name",
            )  # fmt: skip
        if entry.role != "embedding":
            raise ApplianceError(
                f"{name!r} is a {entry.role} model", status=400, code="wrong_role",
                field="name",
            )  # fmt: skip
        try:  # the file must still be what `models add` checked
            path = await asyncio.to_thread(registry.path_of, name)
        except RegistryError as exc:
            raise ApplianceError(str(exc), status=409, code="model_changed") from exc
        if not os.access(directory, os.W_OK) or not os.access(directory / REGISTRY, os.W_OK):
            raise ApplianceError(
                f"{directory}: the server cannot write the model registry there (owner or "
                "mode); `chown -R` it to the service user",
                status=409, code="registry_read_only",
            )  # fmt: skip
        await asyncio.to_thread(self._check_fit, path)

        def activate() -> Callable[[], None]:
            """Make the model active; returns what restores the one active before."""
            previous = Registry.load(directory).active.get("embedding")
            Registry.load(directory).use(name)

            def undo() -> None:
                restored = Registry.load(directory)
                if previous is None:
                    restored.active.pop("embedding", None)
                else:
                    restored.active["embedding"] = previous
                restored.save()

            return undo

        return self._switch.start(name, path, entry.sha256, activate)

    def _check_fit(self, path: Path) -> None:
        """The switch loads the new model beside the running ones: it must fit the budget."""
        info = read_gguf_info(path)
        plan = self._plan
        extra = ModelPlan(
            "embedding", info, min(info.train_ctx, 512), 512, plan.embedding.n_threads
        )
        need = plan.total_bytes + extra.estimated_bytes
        if need > plan.budget_bytes:
            raise ApplianceError(
                f"re-embedding loads {info.name} ({extra.estimated_bytes / MiB:.0f} MiB) beside "
                f"the running models: ~{need / MiB:.0f} MiB of a {plan.budget_bytes / MiB:.0f}"
                " MiB budget. Stop, set models.embedding_model, delete and re-ingest instead, or "
                "raise models.ram_budget_fraction",
                status=409, code="does_not_fit",
            )  # fmt: skip
