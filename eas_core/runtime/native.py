"""Serve a C/C++ or Java custom processor inside the instance runtime (SPEC §7).

Boot execs ``python -m eas_core.runtime.native`` with ``EAS_NATIVE_TYPE`` (``cpp`` or
``java``), ``EAS_NATIVE_ROOT`` (the unpacked processor package) and ``EAS_NATIVE_ENTRY``
(the .so path, or the Java main class). The processor then runs behind the same HTTP
server, workers, metrics and admission as every other kind; only ``load``/``process``
differ.

C/C++ uses PAI-EAS's ABI through ctypes: ``initialize(model_entry, model_config, &state)``
once, then ``process(model_buf, body, size, &out, &out_size)`` per request; the runtime
frees ``out`` with ``free()``. Java runs in this process's JVM through JPype: the class is
built with ``(modelEntry, modelConfig)``, ``Load()`` runs once, and ``Process(byte[])`` (or
``Process(String)``) answers each request; an exception answers 400 with its message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

from eas_core.config import RuntimeSettings
from eas_core.runtime.workers import serve
from processors.base import ProcessorLoadError, RequestContext

# Codes a C processor may return as they are: the HTTP statuses Python's http module knows
# that can end a call with a body. Anything else is the processor's own code, and answering
# it verbatim would hand clients a status their HTTP stacks reject.
_KNOWN = frozenset(s.value for s in HTTPStatus if s.value >= 200 and s.value not in (204, 304))

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def reply_status(code: int) -> tuple[int, str | None]:
    """The HTTP status for a C ``process`` return code, and why it was changed (or None)."""
    if code in (0, 200):
        return 200, None
    if code in _KNOWN:
        return code, None
    return 400, f"processor returned {code}, which is not an HTTP status"


class CppProcessor:
    """A shared library with PAI-EAS's ``initialize``/``process`` exports."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self._model: ctypes.c_void_p | None = None
        self._process: Any = None

    def load(self, model_entry: str, model_config: str) -> None:
        try:
            lib = ctypes.CDLL(str(self.library))
        except OSError as exc:
            raise ProcessorLoadError(
                f"processor_entry: cannot load {self.library.name}: {exc}"
            ) from None
        for name in ("initialize", "process"):
            if not hasattr(lib, name):
                raise ProcessorLoadError(
                    f"processor_entry: {self.library.name} does not export {name}() "
                    f'(declare it extern "C")'
                )
        initialize = lib.initialize
        initialize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
        initialize.restype = ctypes.c_void_p
        process = lib.process
        process.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_int),
        ]
        process.restype = ctypes.c_int
        state = ctypes.c_int(0)
        model = initialize(model_entry.encode(), model_config.encode(), ctypes.byref(state))
        if state.value != 0:
            raise ProcessorLoadError(
                f"initialize() in {self.library.name} set state {state.value} "
                f"(0 means loaded; model_entry={model_entry!r})"
            )
        self._model = ctypes.c_void_p(model)
        self._process = process

    def process(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]:
        out = ctypes.c_void_p()
        size = ctypes.c_int(0)
        buffer = ctypes.create_string_buffer(body, len(body))
        # ctypes releases the GIL for the call: the worker threads run the library at once.
        code = self._process(self._model, buffer, len(body), ctypes.byref(out), ctypes.byref(size))
        data = b""
        if out.value:
            try:
                data = ctypes.string_at(out.value, max(size.value, 0))
            finally:
                _libc.free(out)
        status, why = reply_status(code)
        if why is not None:
            detail = f": {data.decode(errors='replace')}" if data else ""
            return f"{why}{detail}".encode(), status
        return data, status


class JavaProcessor:
    """A Java class with PAI-EAS's ``(modelEntry, modelConfig)``/``Load()``/``Process()``."""

    def __init__(self, root: Path, mainclass: str) -> None:
        self.root = root
        self.mainclass = mainclass
        self._instance: Any = None
        self._bytes = True

    def load(self, model_entry: str, model_config: str) -> None:
        import jpype  # imported here: only Java services need the JVM bridge

        jars = sorted(str(p) for p in self.root.rglob("*.jar"))
        if not jars:
            raise ProcessorLoadError("processor_path: the package holds no .jar file")
        if not jpype.isJVMStarted():
            jpype.startJVM(classpath=jars, convertStrings=False)
        try:
            cls = jpype.JClass(self.mainclass)
        except Exception as exc:
            raise ProcessorLoadError(
                f"processor_mainclass: {self.mainclass!r} is not in {', '.join(jars)}: {exc}"
            ) from None
        try:
            instance = cls(model_entry, model_config)
            instance.Load()
        except jpype.JException as exc:
            raise ProcessorLoadError(f"{self.mainclass}: {exc.getMessage()}") from None
        byte_array = jpype.JArray(jpype.JByte)
        methods = [m for m in cls.class_.getMethods() if str(m.getName()) == "Process"]
        params = {
            str(m.getParameterTypes()[0].getName()) for m in methods if m.getParameterCount() == 1
        }
        if "[B" in params:
            self._bytes = True
        elif "java.lang.String" in params:
            self._bytes = False
        else:
            raise ProcessorLoadError(
                f"processor_mainclass: {self.mainclass} has no Process(byte[]) or Process(String)"
            )
        self._byte_array = byte_array
        self._instance = instance

    def process(self, body: bytes, ctx: RequestContext) -> tuple[bytes, int]:
        import jpype

        try:
            if self._bytes:
                result = self._instance.Process(self._byte_array(body))
            else:
                result = self._instance.Process(jpype.JString(body.decode()))
        except jpype.JException as exc:
            message = exc.getMessage()
            return (
                str(message) if message is not None else str(exc.getClass().getName())
            ).encode(), 400
        if result is None:
            return b"", 200
        if isinstance(result, jpype.JString | str):
            return str(result).encode(), 200
        return bytes(result), 200


def build(settings_env: dict[str, str] | os._Environ[str]) -> CppProcessor | JavaProcessor:
    kind = settings_env.get("EAS_NATIVE_TYPE", "")
    root = Path(settings_env.get("EAS_NATIVE_ROOT", "."))
    entry = settings_env.get("EAS_NATIVE_ENTRY", "")
    if kind == "cpp":
        return CppProcessor(Path(entry))
    if kind == "java":
        return JavaProcessor(root, entry)
    raise ProcessorLoadError(f"EAS_NATIVE_TYPE: {kind!r} is neither cpp nor java")


def main() -> None:
    settings = RuntimeSettings()
    serve(
        lambda: build(os.environ),
        settings,
        threads=settings.worker_threads or 5,
        processes=settings.worker_processes or 1,
    )


if __name__ == "__main__":
    main()
