"""OpenEAS core: the service platform.

Parts (see DESIGN.md): ``controller`` (the only owner of state), ``gateway`` (stateless data
plane), ``runtime`` (one process per instance), ``sdk`` and ``cli`` (clients). Shared shapes
live in ``spec``, pure signing in ``auth``, the HTTP/1.1 kit in ``http`` and artefact handling
in ``artefacts``. The controller, gateway and runtime never import each other.
"""

__version__ = "0.1.0"
