"""Helpers every wing uses: one thread owning a resource, files opened safely."""
