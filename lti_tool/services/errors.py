"""Domain exceptions.

MarginaliaError
├── NotFound
├── Forbidden
├── LaunchError            an LTI message the tool refuses (answers 4xx)
│   └── ReplayedLaunch
├── RegistrationError      dynamic registration could not complete
└── PlatformServiceError   an LMS service (token, AGS, NRPS) failed
"""

from __future__ import annotations


class MarginaliaError(Exception):
    status_code = 400
    public_message = "The request could not be processed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.public_message)
        self.message = message or self.public_message


class NotFound(MarginaliaError):
    status_code = 404
    public_message = "Not found."


class Forbidden(MarginaliaError):
    status_code = 403
    public_message = "You do not have access to this page."


class LaunchError(MarginaliaError):
    status_code = 400
    public_message = "The launch from your learning platform could not be verified."


class ReplayedLaunch(LaunchError):
    public_message = "This launch was already used. Open the activity again from your course."


class RegistrationError(MarginaliaError):
    status_code = 400
    public_message = "The registration with your learning platform could not be completed."


class PlatformServiceError(MarginaliaError):
    status_code = 502
    public_message = "The learning platform did not answer as expected."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Network failures, 429 and 5xx may succeed later; other 4xx will not.

        ``retryable`` given explicitly wins (a missing scope has no status yet never heals).
        """
        if self._retryable is not None:
            return self._retryable
        return self.status is None or self.status == 429 or self.status >= 500
