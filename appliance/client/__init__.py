"""The client wing: everything that talks to a running appliance over HTTP, shared by
the command line (`appliance.cli`) and the admin console (`tui`).

- `http`: the one HTTP client (`ApplianceClient`);
- `errors`: what a failed request becomes (`ApiError`);
- `files`: what an upload sends (`collect_files`);
- `evaluation`: a question set against the live index, through the client;
- `names`: collection names as typed, checked as the server checks them;
- `display`: plain-text formatting both front ends show.

It imports the wire types only (where the server and the key are is `config.local`).
"""

from appliance.client.errors import ApiError
from appliance.client.files import UPLOAD_GROUP, collect_files
from appliance.client.http import ApplianceClient

__all__ = ["UPLOAD_GROUP", "ApiError", "ApplianceClient", "collect_files"]
