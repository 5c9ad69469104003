from apps.core.errors import ApplicationError, Conflict, NotFound


class CatalogInvalid(ApplicationError):
    """A catalog file that cannot be applied; ``field`` is the path in the file
    (``rate_cards[0].charges[2].tiers[1].up_to``). Nothing of the file was applied."""

    code = "catalog_invalid"


class CatalogInUse(Conflict):
    """A change to something finalized invoices were priced with."""

    code = "catalog_in_use"


class PlanNotFound(NotFound):
    code = "plan_not_found"


class CreditPackNotFound(NotFound):
    code = "credit_pack_not_found"


class CatalogChanged(Conflict):
    """Prices changed while a billing run priced with them: the run prices that chunk again."""

    code = "catalog_changed"
