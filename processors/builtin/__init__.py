"""The built-in processors, a module per framework, named by codes in ``processors.registry``.

Each module imports its framework at the top, so it is imported only by the instance that
serves one of its codes. ``tensor`` holds what the tensor processors share (parsing into
checked calls, batching along the first dimension).
"""
