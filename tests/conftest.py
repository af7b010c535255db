"""Shared pytest fixtures."""
from hub_server import hub_server, hub  # noqa: F401
