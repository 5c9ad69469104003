from apps.core.errors import ApplicationError, PayloadTooLarge


class IngestBodyInvalid(ApplicationError):
    code = "invalid_body"


class IngestBodyTooLarge(PayloadTooLarge):
    code = "payload_too_large"


class UsageQueryInvalid(ApplicationError):
    code = "invalid"
