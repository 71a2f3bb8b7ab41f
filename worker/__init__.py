"""Celery workers: inference (GPU) and LMS I/O queues."""
