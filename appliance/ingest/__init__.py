"""Ingestion: parse → chunk → embed → upsert."""
