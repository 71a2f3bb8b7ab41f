"""Local administrator accounts (argon2id password hashes)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import AdminUser

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12


def create(username: str, password: str) -> AdminUser:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is None:
        user = AdminUser(username=username)
        db.session.add(user)
    user.password_hash = _hasher.hash(password)
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> AdminUser | None:
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is None:
        _hasher.hash(password)  # same work either way: no user enumeration by timing
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        return None
    return user
