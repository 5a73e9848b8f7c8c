"""Until app.py imports `appliance.server.routes.openai` (the package that replaced this
module): the names app.py reads from here."""

from appliance.server.routes.openai import OpenAIController, describe_openai

__all__ = ["OpenAIController", "describe_openai"]
