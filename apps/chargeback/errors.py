from apps.core.errors import Conflict, NotFound, ValidationFailed


class StatementNotFound(NotFound):
    code = "statement_not_found"


class StatementNotDraft(Conflict):
    """An issued statement never changes; corrections are new statements."""

    code = "statement_not_draft"


class StatementNotIssued(Conflict):
    code = "statement_not_issued"


class ChargebackInvalid(ValidationFailed):
    code = "chargeback_invalid"


class StatementStale(Conflict):
    """A draft computed before the cost it shows last changed: refresh it before issuing."""

    code = "statement_stale"
