"""Signing a webhook the Standard Webhooks way (v1, HMAC-SHA256); https://www.standardwebhooks.com/.

During a secret's rotation a delivery is signed with each secret still valid, the signatures
space-separated in one ``webhook-signature`` header, as the specification allows: receivers
accept the message when any one of them matches a secret they hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks key prefix, not a secret)
GENERATED_KEY_BYTES = 32  # the specification asks for 24 to 64 random bytes


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 32 bytes from the OS's CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_KEY_BYTES)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key: a ``whsec_`` secret's base64 payload, otherwise the secret's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError("the job's whsec_ secret is not valid base64") from exc
        if not key:
            raise ValueError("the job's whsec_ secret is empty")
        return key
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(signing_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value for every secret in ``keys`` (current first), space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in keys)
