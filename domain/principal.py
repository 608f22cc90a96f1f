"""Who is calling: the verified identity every command and query runs as."""

import unicodedata
from dataclasses import dataclass, field

ROLE_OPERATOR = "ca-operator"
ROLE_APPROVER = "ca-approver"
SCOPE_NOTICES_READ = "notices:read"


@dataclass(frozen=True)
class Principal:
    """A caller as established from a verified bearer token (or nobody)."""

    subject: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    accounts: frozenset[str] = field(default_factory=frozenset)
    # When the token stops being valid (epoch seconds): what outlives a request
    # (a subscription) ends then. Not part of who the caller is.
    expires_at: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Account ids are kept in Unicode NFC (domain.validation's canonical
        # text), so a token spelling an id decomposed still finds its notices.
        canonical = frozenset(unicodedata.normalize("NFC", a) for a in self.accounts)
        object.__setattr__(self, "accounts", canonical)

    @property
    def is_authenticated(self) -> bool:
        return self.subject is not None

    def has_role(self, role: str) -> bool:
        return role in self.roles


ANONYMOUS = Principal()
