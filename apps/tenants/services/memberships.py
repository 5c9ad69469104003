"""Who may use a tenant's portal: inviting people, changing their role, removing them.

The invariant: a tenant always keeps at least one owner, so someone can always manage its
team. Role changes and removals lock every membership row of the tenant (``select_for_update``)
before counting owners, so two owners removing each other at once cannot both succeed.

An invitation creates the Django user when no account has the address (username = the
address, no usable password) and emails a set-your-password link made with Django's
password-reset tokens, for the portal's own reset-confirm page: the link works once, and
signing in afterwards is the usual username (the address) and password."""

from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apps.core.audit import audit_record
from apps.tenants.errors import LastOwner, MembershipExists, MembershipInvalid, MembershipNotFound
from apps.tenants.models import Membership, Tenant

Role = Membership.Role


def _role_check(role: str) -> str:
    if role not in Role.values:
        raise MembershipInvalid(
            f"role: {role!r} is not one of {', '.join(Role.values)}", field="role"
        )
    return role


def _email_check(email: str) -> str:
    address = (email or "").strip().lower()
    try:
        validate_email(address)
    except ValidationError as exc:
        raise MembershipInvalid("email: not a valid email address", field="email") from exc
    return address


def _user_for(address: str) -> tuple[Any, bool]:
    """The account with this address (reused), or a new one without a usable password."""
    users = get_user_model()
    found = list(users.objects.filter(email__iexact=address).order_by("pk")[:2])
    if len(found) > 1:
        # Two accounts share it: choosing one would hand access to the wrong person.
        raise MembershipInvalid(
            "email: several accounts have this address; ask the operator to merge them",
            field="email",
        )
    if found:
        return found[0], False
    if users.objects.filter(username__iexact=address).exists():
        raise MembershipInvalid(
            "email: an account is named after this address but has another email; ask the operator",
            field="email",
        )
    user = users(username=address, email=address)
    user.set_unusable_password()
    user.full_clean()
    user.save()
    return user, True


@transaction.atomic
def membership_invite(
    *, tenant: Tenant, email: str, role: str, invited_by: AbstractBaseUser, base_url: str
) -> Membership:
    """Give the person with ``email`` the ``role`` in ``tenant`` and email them a link.

    A new account gets a set-your-password link (``base_url`` is the portal's scheme and host,
    e.g. ``https://billing.example.com``); an existing one is told where to sign in. The email
    goes once the transaction commits, so a refused or rolled-back invitation sends nothing.
    Refused (``membership_exists``) when the person is already in the tenant."""
    address, role = _email_check(email), _role_check(role)
    user, created = _user_for(address)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise MembershipExists(
            f"email: {address} is already a member of {tenant.name}", field="email"
        )
    membership = Membership(tenant=tenant, user=user, role=role)
    membership.full_clean(validate_constraints=False)  # the unique constraint is the backstop
    try:
        with transaction.atomic():
            membership.save()
    except IntegrityError as exc:  # a concurrent invitation of the same person won
        raise MembershipExists(
            f"email: {address} is already a member of {tenant.name}", field="email"
        ) from exc
    _membership_audit("membership.invite", membership, None, {"role": role})
    message = _invitation(user, tenant, role, invited_by, base_url.rstrip("/"), created)
    transaction.on_commit(lambda: _send(address, *message), robust=True)
    return membership


def _invitation(
    user: AbstractBaseUser,
    tenant: Tenant,
    role: str,
    invited_by: AbstractBaseUser,
    base_url: str,
    new_account: bool,
) -> tuple[str, str]:
    inviter = invited_by.get_full_name() or invited_by.get_username()  # type: ignore[attr-defined]
    lines = [f"{inviter} gave you the {role} role in {tenant.name}'s Percall billing portal.", ""]
    if new_account or not user.has_usable_password():
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        link = reverse("portal:password_reset_confirm", kwargs={"uidb64": uid, "token": token})
        lines += [
            "Choose your password with this link (it works once):",
            f"{base_url}{link}",
            "",
            f"Then sign in with your username {user.get_username()} and that password.",
        ]
    else:
        lines += [f"Sign in as {user.get_username()} at {base_url}{reverse('portal:login')}"]
    lines += ["", "If you did not expect this, you can ignore this email."]
    return f"You are invited to {tenant.name} on Percall", "\n".join(lines) + "\n"


def _send(address: str, subject: str, body: str) -> None:
    send_mail(subject, body, None, [address])


def _locked(scope_tenant_id: UUID) -> list[Membership]:
    """Every membership of the tenant, locked until the transaction ends (in one order, so
    concurrent callers queue rather than deadlock)."""
    return list(
        Membership.objects.select_for_update().filter(tenant_id=scope_tenant_id).order_by("id")
    )


def _target(memberships: list[Membership], membership_id: int) -> Membership:
    for membership in memberships:
        if membership.id == membership_id:
            return membership
    raise MembershipNotFound("membership_id: no such member in this tenant", field="membership_id")


def _last_owner_check(memberships: list[Membership], target: Membership, action: str) -> None:
    owners = [m for m in memberships if m.role == Role.OWNER]
    if target.role == Role.OWNER and len(owners) == 1:
        raise LastOwner(
            f"membership_id: cannot {action} the only owner; make someone else an owner first",
            field="membership_id",
        )


@transaction.atomic
def membership_role_set(*, membership_id: int, role: str, scope_tenant_id: UUID) -> Membership:
    """Change a member's role in ``scope_tenant_id`` (another tenant's membership is not
    found). Demoting the only owner is refused (``last_owner``)."""
    memberships = _locked(scope_tenant_id)
    target = _target(memberships, membership_id)  # first: a foreign id is not found, whatever
    role = _role_check(role)
    if target.role == role:
        return target
    if role != Role.OWNER:
        _last_owner_check(memberships, target, "demote")
    before = {"role": target.role}
    target.role = role
    target.full_clean(validate_constraints=False)
    target.save(update_fields=["role", "updated_at"])
    _membership_audit("membership.role_set", target, before, {"role": role})
    return target


@transaction.atomic
def membership_remove(*, membership_id: int, scope_tenant_id: UUID) -> Membership:
    """Remove a member from ``scope_tenant_id`` (their account stays: they may be in other
    tenants). Removing the only owner is refused (``last_owner``)."""
    memberships = _locked(scope_tenant_id)
    target = _target(memberships, membership_id)
    _last_owner_check(memberships, target, "remove")
    _membership_audit("membership.remove", target, {"role": target.role}, None)
    target.delete()
    return target


def _membership_audit(
    action: str, membership: Membership, before: dict | None, after: dict | None
) -> None:
    who = {"user": membership.user.get_username()}
    audit_record(
        action=action,
        target_type="membership",
        target_id=membership.id,
        tenant_id=membership.tenant_id,
        before=None if before is None else {**who, **before},
        after=None if after is None else {**who, **after},
    )
