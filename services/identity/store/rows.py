"""The tables of identity's own database. Every token, code and link secret is stored hashed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.config import ServiceName
from shared.db import UTCDateTime, new_metadata
from shared.outbox import outbox_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = outbox_tables(Base.metadata)
SOURCE: ServiceName = "identity"


class OrgRow(Base):
    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Lower-cased: one account per address however it is typed.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    # None for an account that signs in through the city's provider only.
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MembershipRow(Base):
    __tablename__ = "memberships"

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    org: Mapped[str] = mapped_column(String(100), ForeignKey("orgs.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)
    lecturer_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_memberships_org_role", "org", "role"),
        Index("ix_memberships_lecturer", "lecturer_id"),
    )


class ExternalAccountRow(Base):
    """A user's account at an OpenID Connect provider, linked by issuer and subject."""

    __tablename__ = "external_accounts"

    issuer: Mapped[str] = mapped_column(String(300), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginRow(Base):
    """One sign-in (or an operator's grant): the `sid` of every token it yields."""

    __tablename__ = "logins"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A user's id, or a service's client id, or whatever an operator's token names.
    sub: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # password, oidc, invitation, operator
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(
        String(64), ForeignKey("logins.sid", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(36))
    # The membership the login acts in; a refresh may pick another the user holds.
    org: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RevocationRow(Base):
    """A revoked login (`sid:<sid>`) or user (`sub:<id>`), published to every verifier until no
    token it covers can still be valid."""

    __tablename__ = "revocations"

    member: Mapped[str] = mapped_column(String(250), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)


class InvitationRow(Base):
    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    org: Mapped[str] = mapped_column(String(100), ForeignKey("orgs.id"))
    role: Mapped[str] = mapped_column(String(40))
    lecturer_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    locale: Mapped[str] = mapped_column(String(10))
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once the invitation is accepted, withdrawn, or voided by a newer one.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_as: Mapped[str | None] = mapped_column(String(20), nullable=True)

    __table_args__ = (Index("ix_invitations_open", "email", "org", "role"),)


class PasswordResetRow(Base):
    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # A user's recent links are counted (at most a few an hour) and voided together.
    __table_args__ = (Index("ix_password_resets_user", "user_id", "created_at"),)


class OidcStateRow(Base):
    """A login sent to the provider and not yet back: what the callback must check."""

    __tablename__ = "oidc_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(200))
    return_to: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuthorizationCodeRow(Base):
    """The one-time code a finished OpenID Connect login hands the web service."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SigningKeyRow(Base):
    """A key added by `commonroom keys rotate` (the first one lives in the key file)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    published_from: Mapped[datetime] = mapped_column(UTCDateTime)
    sign_from: Mapped[datetime] = mapped_column(UTCDateTime)


class ServerSecretRow(Base):
    """Secrets identity's replicas share (the key that derives a refresh token's successor)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
