from apps.core.errors import NotFound, ValidationFailed


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


class WebhookEndpointInvalid(ValidationFailed):
    code = "webhook_endpoint_invalid"
