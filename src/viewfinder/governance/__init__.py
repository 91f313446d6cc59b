"""Governance: who the caller is, what they may do, and the record of what was done.

Modules: :mod:`principal` (the caller), :mod:`passwords` (argon2id), :mod:`users`
(accounts, login, first-admin bootstrap), :mod:`sessions` (browser sessions and CSRF),
:mod:`tokens` (API tokens), :mod:`orgs` (organization, teams, projects), :mod:`roles`
(the permission table and role bindings), :mod:`policy` (the one place that decides an
access) and :mod:`audit` (the hash-chained audit log). Front doors never call these to
read data directly: they call ``viewfinder.services.access``, which asks the policy.
"""
