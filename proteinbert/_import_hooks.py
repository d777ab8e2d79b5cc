"""Run code around the first import of one top-level package, without importing it now.

Used to register proteinbert's Keras classes when Keras is imported, and (by the commands only)
to hide TensorFlow's C++ start-up messages while it loads. A hook is one ``sys.meta_path`` entry
that answers only for its package, delegates the finding to the other finders, and removes
itself once the package is imported.
"""

from __future__ import annotations

import sys
from typing import Callable


class _WrappingLoader:
    """The package's own loader, with ``around(run_package)`` in place of running it."""

    def __init__(self, loader, around: Callable[[Callable[[], None]], None]):
        self._loader = loader
        self._around = around

    def __getattr__(self, name):  # get_source, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._around(lambda: self._loader.exec_module(module))


class ImportHook:
    """A ``sys.meta_path`` finder that wraps the loading of the top-level package ``name``."""

    def __init__(self, name: str, around: Callable[[Callable[[], None]], None]):
        self.name = name
        self.around = around

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        self.remove()
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _WrappingLoader(spec.loader, self.around)
        return spec

    def install(self) -> "ImportHook":
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        return self

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def around_first_import(name: str, around: Callable[[Callable[[], None]], None]) -> ImportHook | None:
    """Call ``around(run)`` in place of running package ``name`` when it is first imported.

    ``around`` must call ``run()`` exactly once (it runs the package's ``__init__``). Returns the
    installed hook, or None if ``name`` is already imported (then nothing happens).
    """
    if name in sys.modules:
        return None
    for finder in sys.meta_path:
        if isinstance(finder, ImportHook) and finder.name == name and finder.around is around:
            return finder
    return ImportHook(name, around).install()
