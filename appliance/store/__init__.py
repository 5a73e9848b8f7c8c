"""Vector stores behind `domain.protocols.VectorStore`."""
