"""Domain services shared by views, CLI commands and Celery tasks."""
