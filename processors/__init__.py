"""Everything that turns a request body into an answer (DESIGN part 4).

``base`` holds the one interface the runtime knows; ``registry`` maps processor codes to
implementations imported late; ``custom`` holds the adapters for user code. Nothing here
imports the controller, the gateway or the runtime.
"""
