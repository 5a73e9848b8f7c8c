"""Answers from an external OpenAI-compatible server (`generation.backend = \"openai\"`)."""
