"""``eascmd``: thin commands over ``eas_core.sdk``; tables for people, JSON on ``--json``."""
