"""Entry module for ``celery -A worker.entry``: builds the Flask app and its Celery app."""

from lti_tool import create_app
from worker.app import celery_init_app

flask_app = create_app()
celery_app = celery_init_app(flask_app)
