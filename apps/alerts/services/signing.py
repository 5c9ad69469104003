"""Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``
with the secret's bytes (``whsec_`` + base64). Space-separated when two secrets sign."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32  # the spec allows 24 to 64


def webhook_secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(*, secrets_: list[str], msg_id: str, timestamp: int, body: str) -> str:
    return " ".join(
        signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets_ if s
    )
