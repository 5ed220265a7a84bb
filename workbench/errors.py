"""Errors that front ends can show as one clear message (no traceback wall)."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: the message is meant for the user, as is."""


class ConfigError(WorkbenchError, ValueError):
    """A run config has an unknown key, a bad value or a bad type."""


class UnknownMetric(ConfigError):
    """``train.metric_for_best_model`` names no validation metric of the task (``choices`` are those)."""

    def __init__(self, message: str, name: str, choices: list[str]):
        super().__init__(message)
        self.name, self.choices = name, choices


class DataError(WorkbenchError, ValueError):
    """Input data cannot be used as given.

    ``problems`` is a structured report (one dict per problem, with ``kind``, ``message``
    and where it is known ``file``, ``column``, ``rows`` and ``fix``) so a UI can render it.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


class ModelError(WorkbenchError, ValueError):
    """A model reference cannot be resolved or loaded safely."""


class RunError(WorkbenchError, RuntimeError):
    """A run failed or a run directory cannot be read."""


class RunFolderDeleted(RunError):
    """The run's folder was deleted while the run was going on: it stops and writes nothing more."""

    def __init__(self, path: object):
        super().__init__(f"the run folder {path} was deleted while the run was going on; the run stopped and "
                         "wrote nothing more (to keep a run, leave its folder until it has finished, or stop it "
                         "first)")
