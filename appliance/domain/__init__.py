"""Pure domain types and the interfaces the services depend on."""
