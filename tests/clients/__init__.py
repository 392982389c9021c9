"""Replays of what unmodified ASU clients send and read, against a real ``firmforge serve``."""
