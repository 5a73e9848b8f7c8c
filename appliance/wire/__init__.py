"""Msgspec request and response types of the HTTP API, OpenAI's included: what the server
sends and the client and console read. One module a concept (`search`, `ask`, `answers`,
`documents`, `jobs`, `conversations`, `keys`, `sources`, `status`, `embedding_switch`,
`openai`); they import nothing else of the appliance, and the core names the ones it
builds (`domain.types`, `config.sources`) from here."""
