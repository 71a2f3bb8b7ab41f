"""Model definitions (torch). Import explicitly: ``from ml.models.student import StudentModel``."""
