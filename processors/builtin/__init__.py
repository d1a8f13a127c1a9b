"""Built-in processors, a module per framework; each is imported only by the instance that
serves its code (see processors/registry.py), so the core never loads a framework."""
