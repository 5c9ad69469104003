import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client

from tests.console.program_setup import program_load

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _sign_in_failures_forgotten():
    """The lockout counts failures in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    def make(username: str = "fiona", *, staff: bool = True, finance: bool = True) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=staff)
        if finance:
            user.groups.add(Group.objects.get_or_create(name="finance")[0])
        return user

    return make


@pytest.fixture
def finance(make_user) -> Client:
    """A client signed in as a finance user (staff, in the finance group)."""
    client = Client()
    client.force_login(make_user("fiona"))
    return client


@pytest.fixture
def program(make_tenant):
    return program_load(make_tenant)
