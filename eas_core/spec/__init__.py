"""Shared shapes of the platform; imports nothing else of eas_core but ``errors``."""
