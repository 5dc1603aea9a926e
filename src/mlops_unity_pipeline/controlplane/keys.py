"""Ed25519 keys for people and the operator: approvals are signatures, checkpoints of the event log are signed.

A key pair is two files: `NAME.key` (PEM, PKCS#8, mode 0600 — never leaves its owner's machine) and `NAME.pub`
(the raw 32-byte public key, base64, one line — what a bundle's policy lists). Identity is possession of a private
key, not an environment variable.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import settings


class KeyFileError(ValueError):
    """A key file that is missing, unreadable or not an Ed25519 key."""


def generate(directory: str | Path, name: str) -> tuple[Path, str]:
    """Write NAME.key (0600) and NAME.pub into `directory`; refuse to overwrite an existing key."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key_path = d / f"{name}.key"
    if key_path.exists():
        raise KeyFileError(f"{key_path} exists; keys are never overwritten (rotate by creating a new name)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = public_key_text(key)
    (d / f"{name}.pub").write_text(pub + "\n")
    return key_path, pub


def load_private(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read the private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def read_public(value: str) -> str:
    """A public key given inline (base64) or as a .pub file."""
    text = Path(value).read_text().strip() if Path(value).is_file() else value.strip()
    try:
        if len(base64.b64decode(text, validate=True)) != 32:
            raise ValueError
    except ValueError:
        raise KeyFileError(f"{value!r} is not an Ed25519 public key (32 bytes, base64)") from None
    return text


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def verify_signature(public_key: str, message: bytes, signature: Any) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True)).verify(
            base64.b64decode(str(signature), validate=True), message)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def requester_key() -> str | None:
    """The public key of the key this process holds (`UNITY_MLOPS_IDENTITY_KEY` names the private key file). An
    approval signed with the same key is a self-approval. Naming a file proves nothing unless it can be read."""
    path = settings.identity_key_path()
    if not path:
        return None
    return public_key_text(load_private(path))
