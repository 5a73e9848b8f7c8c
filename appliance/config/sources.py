"""`[[sources]]`: folders kept in sync with the index (also added by `POST /v1/sources`).

The settings are a wire type too (the API takes and returns them): defined once in
`appliance.wire.sources`, named here for the config schema."""

from __future__ import annotations

from appliance.wire.sources import Glob as Glob
from appliance.wire.sources import SourceId as SourceId
from appliance.wire.sources import SourceSettings as SourceSettings
