from apps.core.errors import Conflict, NotFound, ValidationFailed


class FindingNotFound(NotFound):
    code = "finding_not_found"


class FindingTransitionInvalid(Conflict):
    """A finding moves open -> acknowledged -> resolved (or open -> resolved); a resolved one
    reopens only when a scan finds it again."""

    code = "finding_transition_invalid"


class LeakageInvalid(ValidationFailed):
    code = "leakage_invalid"
