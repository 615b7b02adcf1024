"""A backend class checked by the shape of every hook it has, when it is loaded.

``isinstance`` against a runtime Protocol only asks whether a name is there: a plugin with
``version = "1.2"`` passed it and then failed every run with a traceback inside the worker.
Here each hook is checked for its kind once, at load time. Where the meaning of another kind
is clear it is accepted (``version = "1.2"`` is that version; ``unavailable_reason = None`` says
available); otherwise the plugin is refused with one line naming the hook and the expected form.
"""

from __future__ import annotations

import inspect
from typing import Any

# Called on an instance, with the arguments shown. None opts out where noted.
_METHODS = {
    "setup": "setup(spec, train_x, train_y, init)",
    "train_steps": "train_steps(batch_indices) -> float",
    "predict": "predict(x) -> class ids",
    "params": "params() -> dict of W1, b1, W2, b2",
    "configure_threads": "configure_threads(threads)",
    "build_info": "build_info() -> dict",
    "enable_profiling": "enable_profiling() (or None: cannot profile)",
    "phase_times": "phase_times() -> dict of seconds",
    "executed_work": "executed_work() -> dict",
    "synchronize": "synchronize()",
    "close": "close()",
}
_OPTIONAL_NONE = {"enable_profiling"}
# Called on the class, with no arguments; a value of the result's type is taken as the answer.
_CLASS_CALLS = {
    "version": ("@staticmethod version() -> str, or a version string", (str,)),
    "unavailable_reason": (
        "@staticmethod unavailable_reason() -> str | None, or a reason string or None",
        (str, type(None)),
    ),
}
_VALUES = {
    "follows_batch_stream": ("a bool class attribute", (bool,)),
    "phases_note": ("a string or None", (str, type(None))),
}


def shape_problem(cls: type) -> str | None:
    """Why ``cls``'s hooks are not of the form the harness calls them in; None if they are."""
    for name, form in _METHODS.items():
        if not hasattr(cls, name):
            continue
        value = inspect.getattr_static(cls, name)
        if value is None and name in _OPTIONAL_NONE:
            continue
        if not callable(getattr(cls, name)):
            return _wrong(name, value, f"a method {form}")
    for name, (form, answers) in _CLASS_CALLS.items():
        if not hasattr(cls, name):
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, answers):
            continue
        if isinstance(value, staticmethod | classmethod):
            continue
        if callable(value) and _takes_no_arguments(getattr(cls, name)):
            continue  # a callable object or a metaclass method: callable on the class as it is
        return _wrong(name, value, form)
    for name, (form, kinds) in _VALUES.items():
        if hasattr(cls, name) and not isinstance(inspect.getattr_static(cls, name), kinds):
            return _wrong(name, inspect.getattr_static(cls, name), form)
    return None


def class_answer(cls: type, name: str) -> Any:
    """The answer of the class-level hook ``name``: its value where it is one, else its call."""
    value = inspect.getattr_static(cls, name)
    answers = _CLASS_CALLS[name][1]
    return value if isinstance(value, answers) else getattr(cls, name)()


def _takes_no_arguments(function: Any) -> bool:
    try:
        inspect.signature(function).bind()
    except (TypeError, ValueError):
        return False
    return True


def _wrong(name: str, value: Any, form: str) -> str:
    if inspect.isfunction(value) and name in _CLASS_CALLS:
        found = "a method that needs an instance"
    else:
        found = f"{type(value).__name__} {value!r:.40}"
    return f"hook {name!r} is {found}; expected {form}"
