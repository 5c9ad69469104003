from apps.core.errors import ApplicationError, Conflict, NotFound


class BillingInvalid(ApplicationError):
    code = "invalid"


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class InvoiceNotDraft(Conflict):
    """A finalized invoice never changes; corrections are a void and reissue, or a note."""

    code = "invoice_not_draft"


class InvoiceNotFinalized(Conflict):
    code = "invoice_not_finalized"


class IdempotencyKeyMissing(ApplicationError):
    code = "idempotency_key_required"


class IdempotencyKeyReused(ApplicationError):
    """The same Idempotency-Key with another request body."""

    code = "idempotency_key_reused"
    status_code = 422


class UsagePending(Conflict):
    """The period's usage is not all rolled up yet: finalizing now would bill what has arrived
    so far as if it were everything (a metering outage is not zero usage)."""

    code = "usage_pending"
