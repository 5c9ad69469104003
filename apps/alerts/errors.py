from apps.core.errors import Conflict, NotFound, ValidationFailed


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class WebhookEndpointInvalid(ValidationFailed):
    code = "webhook_endpoint_invalid"


class BudgetNotFound(NotFound):
    code = "budget_not_found"


class BudgetInvalid(ValidationFailed):
    code = "budget_invalid"


# --- anomalies and forecasts ---------------------------------------------------------------


class AnomalyNotFound(NotFound):
    code = "anomaly_not_found"


class AnomalyStatusInvalid(Conflict):
    code = "anomaly_status_invalid"


class AnomalyQueryInvalid(ValidationFailed):
    code = "anomaly_query_invalid"


class ForecastQueryInvalid(ValidationFailed):
    code = "forecast_query_invalid"
