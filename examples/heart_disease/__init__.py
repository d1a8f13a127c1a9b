"""The heart-disease classifier: OpenEAS's example deployment pipeline (see README.md)."""
