"""Msgspec request and response types of the HTTP API, OpenAI's included: what the server
sends and the client and console read."""
