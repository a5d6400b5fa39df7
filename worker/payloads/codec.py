"""Encrypted payloads: SLOWLOG arguments, key names, client addresses and alert labels never
sit in Temporal's history in clear when `temporal.codec` names a key.

Each payload is sealed whole (its metadata too) with AES-256-GCM under the active key; the key
id travels in the sealed payload's metadata, authenticated with it, so keys rotate: add the new
key, make it active, keep the old one until no open history needs it. A payload that is not
sealed (an incident started before the codec, the replay corpus) passes through untouched."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE = 12


class CodecError(ValueError):
    pass


def read_key(path: Path) -> bytes:
    """32 bytes, as 64 hex characters (`openssl rand -hex 32`) or base64."""
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise CodecError(f"codec key {path}: {err.strerror}") from None
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise CodecError(
            f"codec key {path}: not a 256-bit key. Fix: write one with `openssl rand -hex 32`"
        )
    return key


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise CodecError(f"codec: the active key {active!r} is not among the keys")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def _seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE)
        kid = self._active.encode()
        sealed = self._keys[self._active].encrypt(nonce, payload.SerializeToString(), kid)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid}, data=nonce + sealed)

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec: as it was
        kid = payload.metadata.get(KEY_ID, b"")
        aead = self._keys.get(kid.decode(errors="replace"))
        if aead is None:
            raise CodecError(
                f"payload sealed with key {kid.decode(errors='replace')!r}, which this "
                "process does not hold: add it to temporal.codec.keys"
            )
        try:
            plain = aead.decrypt(payload.data[:NONCE], payload.data[NONCE:], kid)
        except InvalidTag:
            raise CodecError("a sealed payload failed its authentication: altered, or the "
                             "wrong key under that id") from None  # fmt: skip
        return Payload.FromString(plain)
