"""Wire formats of the built-in processors: the PAI-EAS .proto files, their generated
``*_pb2`` modules (``make proto`` regenerates them) and the numpy helpers in ``tensors``.

Shared by the processors and the SDK; imports no ML framework.
"""
