"""Query: embed → search → prompt → generate → stream."""
