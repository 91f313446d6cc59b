"""Catalog (SQL), dataset tables (Lance), blobs (content-addressed), query."""
