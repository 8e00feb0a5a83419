"""XXH64, the "XX hash" Altcraft's v1.0 trigger links address profiles by. Pure Python."""

from __future__ import annotations

_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5
_MASK = 0xFFFFFFFFFFFFFFFF


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _MASK
    return (_rotl(acc, 31) * _P1) & _MASK


def _merge(acc: int, value: int) -> int:
    acc ^= _round(0, value)
    return (acc * _P1 + _P4) & _MASK


def xxh64(data: bytes, seed: int = 0) -> int:
    length, index = len(data), 0
    if length >= 32:
        v1 = (seed + _P1 + _P2) & _MASK
        v2 = (seed + _P2) & _MASK
        v3 = seed & _MASK
        v4 = (seed - _P1) & _MASK
        while index + 32 <= length:
            lanes = [
                int.from_bytes(data[index + 8 * i : index + 8 * i + 8], "little") for i in range(4)
            ]
            v1, v2, v3, v4 = (
                _round(v, lane) for v, lane in zip((v1, v2, v3, v4), lanes, strict=True)
            )
            index += 32
        acc = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK
        for v in (v1, v2, v3, v4):
            acc = _merge(acc, v)
    else:
        acc = (seed + _P5) & _MASK
    acc = (acc + length) & _MASK
    while index + 8 <= length:
        acc ^= _round(0, int.from_bytes(data[index : index + 8], "little"))
        acc = (_rotl(acc, 27) * _P1 + _P4) & _MASK
        index += 8
    if index + 4 <= length:
        acc ^= (int.from_bytes(data[index : index + 4], "little") * _P1) & _MASK
        acc = (_rotl(acc, 23) * _P2 + _P3) & _MASK
        index += 4
    while index < length:
        acc ^= (data[index] * _P5) & _MASK
        acc = (_rotl(acc, 11) * _P1) & _MASK
        index += 1
    acc ^= acc >> 33
    acc = (acc * _P2) & _MASK
    acc ^= acc >> 29
    acc = (acc * _P3) & _MASK
    acc ^= acc >> 32
    return acc


def xxh64_hex(data: bytes, seed: int = 0) -> str:
    return f"{xxh64(data, seed):016x}"
