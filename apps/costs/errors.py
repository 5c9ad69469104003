from apps.core.errors import ValidationFailed


class AnalyticsQueryInvalid(ValidationFailed):
    code = "analytics_query_invalid"
