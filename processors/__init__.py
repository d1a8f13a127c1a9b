"""Everything that turns a request body into an answer (DESIGN part 4).

``base`` holds the one interface the runtime knows; ``registry`` maps processor codes to
implementations imported late; ``builtin`` holds the built-in processors, a module per
framework; ``wire`` the request formats they read (the PAI-EAS ``.proto`` files, tensors,
records). A user's Python processor (``allspark.BaseProcessor``) is adapted to ``base`` by
the runtime (``eas_core.runtime.custom``). Nothing here imports the controller, the gateway
or the runtime.
"""
