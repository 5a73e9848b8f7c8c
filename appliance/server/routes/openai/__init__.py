"""The OpenAI-compatible API: routes, OpenAI's error shape, SSE framing, embeddings."""

from appliance.server.routes.openai.openapi import describe_openai
from appliance.server.routes.openai.routes import OpenAIController

__all__ = ["OpenAIController", "describe_openai"]
