"""Each function's own environment, in a runtime where every function shares one process.

On AWS each function sees exactly the variables its stack definition gives it. Locally every
handler runs in this process, so `FunctionEnviron` takes the place of ``os.environ``: while a
worker thread runs an invocation (`LambdaRunner`), reads of the functions' own settings
(`functions.chat.settings.ENV`) see that function's values only; a variable the stack does not
give that function is absent, exactly as on Lambda. Every other variable (AWS_*, PATH, a test's
own) reads through to the process environment, and writes always go to it.

Threads a handler starts itself (its thread pools) are not invocations: they read the process
environment (docs/local-runtime.md, "What differs from AWS").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager, nullcontext
from typing import Any

from functions.chat.settings import ENV_NAMES, FUNCTION_RESOURCES

# A function's own: its settings, and the credentials of its role (`serve --iam` gives each its own).
CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_FUNCTION_NAMES = frozenset(ENV_NAMES) | frozenset(CREDENTIAL_NAMES)


def function_environments(
    functions: Iterable[str], variables: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Each function's variables from the one definition (`FUNCTION_RESOURCES`), as the stack
    builds them: of ``variables`` (everything the runtime gives), one that the definition names
    for some function goes only to the functions naming it; every other one goes to all. A function the definition does not name (one the stack does not
    deploy: the reviewer) gets every variable."""
    own = {name: set(names) for name, names in FUNCTION_RESOURCES.items()}
    someones = set().union(*own.values())
    common = {key: value for key, value in variables.items() if key not in someones}
    return {
        name: (
            {**common, **{key: value for key, value in variables.items() if key in own[name]}}
            if name in own
            else dict(variables)
        )
        for name in functions
    }


class FunctionEnviron(MutableMapping[str, str]):
    """``os.environ`` as the function running on this thread sees it (see the module docstring)."""

    def __init__(self, process: MutableMapping[str, str]) -> None:
        self.process = process
        self._local = threading.local()

    def _own(self) -> Mapping[str, str] | None:
        env: Mapping[str, str] | None = getattr(self._local, "env", None)
        return env

    @contextmanager
    def running(self, env: Mapping[str, str] | None) -> Iterator[None]:
        """The current thread runs a function whose environment is ``env`` (None: the process's)."""
        previous = self._own()
        self._local.env = env
        try:
            yield
        finally:
            self._local.env = previous

    def __getitem__(self, key: str) -> str:
        own = self._own()
        if own is not None and key in _FUNCTION_NAMES:
            return own[key]
        return self.process[key]

    def __contains__(self, key: object) -> bool:
        own = self._own()
        if own is not None and key in _FUNCTION_NAMES:
            return key in own
        return key in self.process

    def __iter__(self) -> Iterator[str]:
        own = self._own()
        if own is None:
            return iter(self.process)
        names = [k for k in self.process if k not in _FUNCTION_NAMES]
        return iter(names + [k for k in own if k not in names])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, key: str, value: str) -> None:
        self.process[key] = value

    def __delitem__(self, key: str) -> None:
        del self.process[key]

    def copy(self) -> dict[str, str]:
        return dict(self)

    def __repr__(self) -> str:
        return f"FunctionEnviron({'process' if self._own() is None else 'function'})"


def whole_environment(own: Mapping[str, str]) -> dict[str, str]:
    """The environment of a process that runs one function only (a fan-out worker process): the
    process's variables except the functions' own names, then that function's."""
    current: Mapping[str, str] = os.environ
    process = current.process if isinstance(current, FunctionEnviron) else current
    return {**{k: v for k, v in process.items() if k not in _FUNCTION_NAMES}, **own}


def install() -> FunctionEnviron:
    """Puts a `FunctionEnviron` in place of ``os.environ`` (once per process; os.getenv and
    every later read go through it, while the process environment it wraps stays as it is)."""
    current: MutableMapping[str, str] = os.environ
    if isinstance(current, FunctionEnviron):
        return current
    view = FunctionEnviron(current)
    os.environ = view  # type: ignore[assignment]  # noqa: B003
    return view


def running(env: Mapping[str, str] | None) -> Any:
    """Context manager: the current thread runs a function with ``env`` (no-op if not installed)."""
    if isinstance(os.environ, FunctionEnviron):
        return os.environ.running(env)
    return nullcontext()
