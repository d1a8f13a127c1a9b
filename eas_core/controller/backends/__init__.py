"""Where instances run (DESIGN "Backends"). ``base.Backend`` is the whole contract — place ·
stop · observe · nodes · logs · shutdown — and ``registry`` chooses an implementation by name:
``local`` (child processes on this machine) today."""
