"""Pure signing and verification: service tokens (plain and EAS HMAC) and access keys.

No I/O and no other part of eas_core beyond ``errors``; the gateway, the runtime, the
controller and the clients all use these same functions.
"""
