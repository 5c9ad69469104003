"""Sign-in for the web pages: the right password signs in; five wrong ones lock the username
and the address for the lockout time, even against the right password, and then it passes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import RequestFactory

from apps.tenants.services.sign_in import SignInFailed, SignInLocked, sign_in_check

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def dana(db):
    return get_user_model().objects.create_user(username="dana", password="right-horse-9")


def attempt(username: str, password: str, address: str = "10.0.0.1"):
    request = RequestFactory().post("/portal/login/", REMOTE_ADDR=address)
    return sign_in_check(request=request, username=username, password=password)


def test_the_right_password_signs_in(dana):
    assert attempt("dana", "right-horse-9") == dana


def test_five_failures_lock_the_username_even_against_the_right_password(dana, clock):
    for _ in range(5):
        with pytest.raises(SignInFailed):
            attempt("dana", "guess")
    with pytest.raises(SignInLocked) as locked:
        attempt("Dana", "right-horse-9", address="10.9.9.9")  # any case, any address
    assert locked.value.field == "username" and "15 minutes" in locked.value.message
    # after the lockout (15 minutes from the first failure) the right password works again
    clock.shift(timedelta(minutes=15, seconds=1))
    assert attempt("dana", "right-horse-9") == dana


def test_a_guessing_address_is_locked_for_every_username(dana):
    for n in range(5):
        with pytest.raises(SignInFailed):
            attempt(f"user{n}", "guess", address="10.6.6.6")
    with pytest.raises(SignInLocked):
        attempt("dana", "right-horse-9", address="10.6.6.6")
    assert attempt("dana", "right-horse-9", address="10.0.0.2") == dana


def test_a_success_clears_the_usernames_failures(dana):
    for _ in range(4):
        with pytest.raises(SignInFailed):
            attempt("dana", "guess", address=f"10.1.1.{_}")
    attempt("dana", "right-horse-9", address="10.2.2.2")
    for _ in range(4):  # four more are not five in a row
        with pytest.raises(SignInFailed):
            attempt("dana", "guess", address=f"10.3.3.{_}")
    assert attempt("dana", "right-horse-9", address="10.4.4.4") == dana


def test_an_inactive_user_cannot_sign_in(dana):
    dana.is_active = False
    dana.save()
    with pytest.raises(SignInFailed):
        attempt("dana", "right-horse-9")
