"""Thin HTTP handlers: validate, call a service, shape the answer."""
