"""The client wing: everything that talks to a running appliance over HTTP, shared by
the command line (`appliance.cli`) and the admin console (`tui`).

- `http`: the one HTTP client (`ApplianceClient`, `ApiError`);
- `local`: where the server and the key are (`server_url`, `api_key`), what an upload
  sends (`collect_files`);
- `evaluation`: a question set against the live index, through the client;
- `display`: plain-text formatting both front ends show.

It imports the wire types, the config and the domain, never the server.
"""

from appliance.client.http import ApiError, ApplianceClient
from appliance.client.local import UPLOAD_GROUP, api_key, collect_files, server_url

__all__ = ["UPLOAD_GROUP", "ApiError", "ApplianceClient", "api_key", "collect_files", "server_url"]
