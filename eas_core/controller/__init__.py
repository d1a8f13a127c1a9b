"""The controller (DESIGN part 1): the only owner of state.

``api`` serves the control API, ``store`` keeps services, versions and keys (the only place
that imports SQLAlchemy), ``reconciler`` plans and applies instance changes through a
``backends`` implementation, ``publisher`` pushes the route table to gateways. It never
imports the gateway or the runtime.
"""
