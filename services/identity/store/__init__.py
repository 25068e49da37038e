"""Identity's own database: accounts, logins, invitations, keys, and the outbox.

One module per concern; queries take the request's session and return domain Structs, and
nothing here decides a rule.
"""

from services.identity.store.rows import SOURCE, Base, tables

__all__ = ["SOURCE", "Base", "tables"]
