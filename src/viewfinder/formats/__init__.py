"""Importers and exporters, behind one registry (see ``registry``)."""
