"""The admin terminal UI: talks to the appliance over its HTTP API only."""
