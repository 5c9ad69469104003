import pytest
import time_machine

from tests.security.world import NOW, SETUP, World


@pytest.fixture
def world(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the finalized invoices' PDFs
    with time_machine.travel(SETUP, tick=False):
        built = World()
    with time_machine.travel(NOW, tick=False):
        yield built
