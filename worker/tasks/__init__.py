"""Celery tasks, one module per domain; importing this package registers them all."""

from worker.tasks import grading, maintenance, passback

__all__ = ["grading", "maintenance", "passback"]
