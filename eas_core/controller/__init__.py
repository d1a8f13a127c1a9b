"""The controller (DESIGN part 1): the only owner of state.

``app`` wires it (the composition root). ``api`` serves the control API over ``operations``
(what a request does to services: validate with ``checks``, write once) and ``views`` (what
`ls`/`desc`/`w` show). ``store`` keeps services, versions and keys (the only place that imports
SQLAlchemy). The ``reconciler`` makes what runs match ``desired`` state through a ``backends``
implementation, then hands each tick's snapshot to its hooks: ``rolls`` (end or undo rolls),
``cleanup`` (drop deleted services) and the ``publisher`` (push the route table to gateways).
It never imports the gateway or the runtime.
"""
