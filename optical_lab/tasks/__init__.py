"""Evaluation tasks behind one protocol (:mod:`.base`), one module each, found by name (:mod:`.registry`)."""

from .base import Task, TaskFold, TaskResult
from .registry import TASKS, get_task

__all__ = ["Task", "TaskFold", "TaskResult", "TASKS", "get_task"]
