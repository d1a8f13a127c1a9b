"""The instance runtime (DESIGN part 3): one OS process per instance, hosting one processor.

``app`` serves the predict path and the built-in endpoints over the http kit; ``admission``
bounds the queue (450) and enforces the deadline (408); ``workers`` runs the processor on
threads and forks worker processes; ``boot`` fetches artefacts and starts the processor for
a managed instance. It never imports the controller or the gateway.
"""
