"""The team server: ``create_app(settings)`` (in :mod:`viewfinder.server.app`) serves the
REST API under ``/api/v1`` and the web UI; ``viewfinder serve`` runs it with uvicorn.

Modules: :mod:`app` (settings, the app, its state), :mod:`deps` (who is calling, CSRF),
:mod:`errors` (Viewfinder errors → HTTP), :mod:`middleware` (body limit, security
headers, server timing), :mod:`api` (one router per resource), :mod:`jobs` (background
jobs in the catalog), :mod:`export_jobs` (exports as jobs), :mod:`thumbnails`
(rendered once per image hash and size), :mod:`ui` (the web UI's pages).

Nothing heavy is imported here: ``import viewfinder.server`` costs nothing.
"""
