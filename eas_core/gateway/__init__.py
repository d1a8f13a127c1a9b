"""The gateway (DESIGN part 2): the stateless data-plane entry.

It serves ``/api/predict/{service}`` and the service-discovery endpoints from the last route
table the controller pushed, kept in memory (and on disk, so a restarted gateway serves at
once). It never reads the database and never imports the controller or the runtime.
"""
