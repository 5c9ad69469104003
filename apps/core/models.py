"""The abstract base every Percall model stands on."""

import uuid

from django.db import models


class BaseModel(models.Model):
    """Creation and last-change times, kept by the database layer, never by callers."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ExternalModel(BaseModel):
    """A model whose rows are visible outside Percall: addressed by a UUID, never a sequence."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    class Meta:
        abstract = True
