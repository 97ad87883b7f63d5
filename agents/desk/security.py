"""The desk's security parts, each small enough to test alone: password hashing, tokens and CSRF
(the sign-in rate limit is counted in PostgreSQL: ``store.count_attempt``).

CSRF: a signed token (itsdangerous) bound to the session. Signed in, the desk puts in every form and
in the ``X-CSRF-Token`` header of its scripts' requests a value derived from the session cookie,
signed with the desk's key and timed; before sign-in (the sign-in form) the value is a random one it
sets in an HttpOnly, SameSite=Strict cookie (double submit), and sign-in rotates it. A write is
accepted only when the signature is good, not older than the session lifetime, and the signed value
is the one the request's own cookies give: a token from another session, or from before sign-in,
is refused. Why this one: it needs no extra table or middleware library, covers the sign-in form
(before any session exists) as well as the signed-in forms, and a page from another site can neither
read the cookies nor forge the signature. Requests authenticated by ``Authorization: Bearer`` carry
no ambient credential and need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

ROLES = ("agent", "supervisor")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

_hasher = PasswordHasher()  # argon2id with the library's current defaults
# Verified against when the username is unknown, so an unknown name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash`` (None: an unknown user, checked against a dummy)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A session or API token: 256 random bits."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps of a token: its SHA-256 (a stolen table gives no usable token)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Csrf:
    """Signed tokens bound to a value of the request's cookies (its session, or before sign-in a per-browser
    random value)."""

    def __init__(self, secret: str, max_age: float):
        self.serializer = URLSafeTimedSerializer(secret, salt="sentinel-desk-csrf")
        self.max_age = max_age

    @staticmethod
    def new_cookie_value() -> str:
        return secrets.token_urlsafe(24)

    def token(self, cookie_value: str) -> str:
        return self.serializer.dumps(cookie_value)

    def valid(self, token: str | None, cookie_value: str | None) -> bool:
        if not token or not cookie_value or len(token) > 512:
            return False
        try:
            signed = self.serializer.loads(token, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, cookie_value)
