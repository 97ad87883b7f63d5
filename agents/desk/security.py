"""The desk's security parts, each small enough to test alone: password hashing, tokens, CSRF and
the sign-in rate limit.

CSRF: a signed double-submit token (itsdangerous). The desk sets a random value in an HttpOnly,
SameSite=Strict cookie and puts the same value, signed with the desk's key and timed, in every
form and in the ``X-CSRF-Token`` header of its scripts' requests. A write is accepted only when the
signature is good, not older than the session lifetime, and the signed value equals the cookie.
Why this one: it needs no extra table or middleware library, covers the sign-in form (before any
session exists) as well as the signed-in forms, and a page from another site can neither read the
cookie nor forge the signature. Requests authenticated by ``Authorization: Bearer`` carry no ambient
credential and need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

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
    """Signed double-submit tokens bound to a per-browser cookie value."""

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


class RateLimiter:
    """At most ``limit`` failures per key within ``window`` seconds (a sliding window, in memory).

    Sign-ins count failures under two keys, the username and the client address; a key over its
    limit is refused until its oldest failure leaves the window. A success clears the username's count.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000):
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.limit

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            if len(q) < self.limit:
                return 0.0
            return max(0.0, q[len(q) - self.limit] + self.window - now)

    def fail(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            if key not in self._failures and len(self._failures) >= self.max_keys:
                # bounded memory under a flood of new keys: forget the oldest key first
                self._failures.pop(next(iter(self._failures)))
            q = self._failures.setdefault(key, deque())
            q.append(now)
            while len(q) > self.limit:  # more than the limit is never needed to decide
                q.popleft()

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
