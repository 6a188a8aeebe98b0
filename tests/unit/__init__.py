"""Unit tests: pure parts (parsing, validation, planning, formatting, codec bytes), in-process, no root, fast."""
