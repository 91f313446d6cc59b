"""Domain types, label geometry and references. No I/O here."""
