"""The portal's captchas (soap_service.ra.captcha): single use whatever the answer, expiry, the
fixed test answer, the image, hostile inputs, and one winner among concurrent checks; on SQLite
and PostgreSQL. And the setting SOAP_SERVICE_TEST_CAPTCHA, refused off loopback."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import event, select

from soap_service.config import ConfigurationError, load_settings
from soap_service.ra.captcha import CAPTCHA_LIFETIME, IMAGE_HEIGHT, IMAGE_WIDTH, CaptchaChallenge, Captchas
from soap_service.ra.service import RegistrationAuthority
from soap_service.storage.models import PortalCaptcha

ANSWER = "12345"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fixed(ra: RegistrationAuthority, answer: str = ANSWER) -> RegistrationAuthority:
    """The RA of a test installation: every captcha's answer is ``answer``."""
    return dataclasses.replace(ra, settings=dataclasses.replace(ra.settings, test_captcha=answer))


def _shifted(ra: RegistrationAuthority, by: timedelta) -> RegistrationAuthority:
    clock = ra.clock
    return dataclasses.replace(ra, clock=lambda: clock() + by)


def _row(ra: RegistrationAuthority, token: str) -> PortalCaptcha | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with ra.readers() as session:
        return session.scalar(select(PortalCaptcha).where(PortalCaptcha.challenge_hash == digest))


@pytest.fixture
def captchas(ra: RegistrationAuthority) -> Captchas:
    return Captchas(_fixed(ra))


# -- single use -------------------------------------------------------------------------------


def test_a_right_answer_passes_once(captchas: Captchas, ra: RegistrationAuthority) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token, ANSWER) is True
    assert captchas.check(challenge.token, ANSWER) is False
    row = _row(ra, challenge.token)
    assert row is not None and row.used_at is not None


def test_a_wrong_answer_spends_the_challenge(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token, "54321") is False
    assert captchas.check(challenge.token, ANSWER) is False


def test_an_answer_is_trimmed(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token, f"  {ANSWER}\t\n") is True


def test_an_unknown_token_fails(captchas: Captchas) -> None:
    assert captchas.check("A" * 43, ANSWER) is False


def test_each_answer_is_bound_to_its_token(captchas: Captchas) -> None:
    first, second = captchas.new(), captchas.new()
    assert first.token != second.token
    assert captchas.check(second.token, ANSWER) is True
    assert captchas.check(first.token, ANSWER) is True


# -- expiry and pruning -----------------------------------------------------------------------


def test_a_challenge_expires(captchas: Captchas, ra: RegistrationAuthority) -> None:
    late = Captchas(_shifted(_fixed(ra), CAPTCHA_LIFETIME + timedelta(seconds=1)))
    challenge = captchas.new()
    assert late.check(challenge.token, ANSWER) is False
    # the expired check did not spend it: it was never answerable again anyway
    row = _row(ra, challenge.token)
    assert row is not None and row.used_at is None


def test_a_challenge_passes_just_before_it_expires(captchas: Captchas, ra: RegistrationAuthority) -> None:
    almost = Captchas(_shifted(_fixed(ra), CAPTCHA_LIFETIME - timedelta(seconds=5)))
    challenge = captchas.new()
    assert almost.check(challenge.token, ANSWER) is True


def test_the_lifetime_is_ten_minutes(captchas: Captchas, ra: RegistrationAuthority) -> None:
    challenge = captchas.new()
    row = _row(ra, challenge.token)
    assert row is not None
    assert CAPTCHA_LIFETIME == timedelta(minutes=10)
    assert row.expires_at - row.created_at == CAPTCHA_LIFETIME
    assert challenge.expires_at == row.expires_at


def test_prune_deletes_expired_challenges_only(captchas: Captchas, ra: RegistrationAuthority) -> None:
    challenge = captchas.new()
    captchas.prune()
    assert _row(ra, challenge.token) is not None
    row = _row(ra, challenge.token)
    assert row is not None
    assert captchas.prune(row.expires_at + timedelta(seconds=1)) >= 1
    assert _row(ra, challenge.token) is None
    assert captchas.check(challenge.token, ANSWER) is False


# -- answers and what is stored ---------------------------------------------------------------


def test_the_test_setting_fixes_the_answer(ra: RegistrationAuthority) -> None:
    captchas = Captchas(_fixed(ra, "00042"))
    challenge = captchas.new()
    assert captchas.check(challenge.token, "00042") is True


def test_a_drawn_answer_is_five_digits_and_only_hashes_are_stored(ra: RegistrationAuthority) -> None:
    assert ra.settings.test_captcha is None
    captchas = Captchas(ra)
    challenge = captchas.new()
    row = _row(ra, challenge.token)
    assert row is not None
    assert challenge.token not in (row.challenge_hash, row.answer_hash)
    # Find the answer the hard way, as someone with the table would: 100,000 guesses.
    found = [
        guess
        for guess in (f"{n:05d}" for n in range(100_000))
        if hashlib.sha256(f"{challenge.token}\n{guess}".encode()).hexdigest() == row.answer_hash
    ]
    assert len(found) == 1
    assert captchas.check(challenge.token, found[0]) is True


def test_tokens_are_32_random_bytes_url_safe(captchas: Captchas) -> None:
    tokens = {captchas.new().token for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert len(base64.urlsafe_b64decode(token + "=")) == 32
        assert token.isascii() and "=" not in token and "+" not in token and "/" not in token


# -- the image --------------------------------------------------------------------------------


def test_the_image_is_a_png_of_bounded_size(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert challenge.png.startswith(PNG_SIGNATURE)
    assert 1_000 < len(challenge.png) < 64 * 1024
    with Image.open(BytesIO(challenge.png)) as image:
        image.verify()
    with Image.open(BytesIO(challenge.png)) as image:
        assert image.format == "PNG"
        assert image.size == (IMAGE_WIDTH, IMAGE_HEIGHT) == (200, 70)
    assert "png=" not in repr(challenge)  # the repr stays short


def test_the_data_uri_is_well_formed(captchas: Captchas) -> None:
    challenge = captchas.new()
    prefix = "data:image/png;base64,"
    assert challenge.data_uri.startswith(prefix)
    payload = challenge.data_uri[len(prefix):]
    assert payload.isascii() and all(ch.isalnum() or ch in "+/=" for ch in payload)
    assert base64.b64decode(payload, validate=True) == challenge.png


def test_each_challenge_has_its_own_image(ra: RegistrationAuthority) -> None:
    captchas = Captchas(ra)
    assert captchas.new().png != captchas.new().png


# -- hostile inputs ---------------------------------------------------------------------------


HOSTILE_TOKENS = [
    "",
    "x" * (1024 * 1024),
    "\x00" * 43,
    "é" * 43,
    "\ud800" * 10,  # a lone surrogate: not encodable as UTF-8
    "' OR 1=1 --",
]
HOSTILE_ANSWERS = ["", " ", "\x00", ANSWER + "\x00", "١٢٣٤٥", "\ud800", "9" * 17, "x" * (1024 * 1024)]


@pytest.mark.parametrize("token", HOSTILE_TOKENS, ids=range(len(HOSTILE_TOKENS)))
def test_hostile_tokens_are_false(captchas: Captchas, token: str) -> None:
    assert captchas.check(token, ANSWER) is False


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS, ids=range(len(HOSTILE_ANSWERS)))
def test_hostile_answers_are_false_and_spend_the_challenge(captchas: Captchas, answer: str) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token, answer) is False
    assert captchas.check(challenge.token, ANSWER) is False


def test_an_answer_over_the_bound_is_false_even_if_it_trims_to_the_right_one(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token, ANSWER.center(17)) is False


def test_a_token_with_a_suffix_is_another_token(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert captchas.check(challenge.token + "\x00", ANSWER) is False
    assert captchas.check(challenge.token, ANSWER) is True


# -- every failure costs the same ---------------------------------------------------------------


@pytest.fixture
def statements(ra: RegistrationAuthority) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "portal_captchas" in statement:
            seen.append(statement.split()[0].upper())

    event.listen(ra.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(ra.engine, "before_cursor_execute", record)


def test_every_outcome_runs_the_same_one_update(
    captchas: Captchas, ra: RegistrationAuthority, statements: list[str]
) -> None:
    late = Captchas(_shifted(_fixed(ra), CAPTCHA_LIFETIME + timedelta(minutes=1)))
    spent, wrong, expired, right = captchas.new(), captchas.new(), captchas.new(), captchas.new()
    assert captchas.check(spent.token, "00000") is False
    statements.clear()
    outcomes = [
        captchas.check("B" * 43, ANSWER),  # unknown
        captchas.check(wrong.token, "00000"),  # wrong
        captchas.check(spent.token, ANSWER),  # spent
        late.check(expired.token, ANSWER),  # expired
        captchas.check(right.token, ANSWER),  # right
    ]
    assert outcomes == [False, False, False, False, True]
    assert statements == ["UPDATE"] * 5


# -- concurrency ------------------------------------------------------------------------------


def _race(captchas: Captchas, token: str, answer: str, threads: int) -> list[bool]:
    """``threads`` checks of one token, released together; their outcomes (any exception fails)."""
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            barrier.wait(timeout=30)
            outcome = captchas.check(token, answer)
        except BaseException as error:
            with lock:
                errors.append(error)
            return
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert len(results) == threads
    return results


def test_concurrent_checks_of_one_token_pass_once(captchas: Captchas) -> None:
    for _ in range(5):
        challenge = captchas.new()
        assert sorted(_race(captchas, challenge.token, ANSWER, threads=8)) == [False] * 7 + [True]


def test_concurrent_wrong_answers_never_pass(captchas: Captchas) -> None:
    challenge = captchas.new()
    assert _race(captchas, challenge.token, "00000", threads=8) == [False] * 8
    assert captchas.check(challenge.token, ANSWER) is False


def test_concurrent_new_challenges_draw_images_in_parallel(ra: RegistrationAuthority) -> None:
    captchas = Captchas(_fixed(ra))
    made: list[CaptchaChallenge] = []
    lock = threading.Lock()

    def make() -> None:
        challenge = captchas.new()
        with lock:
            made.append(challenge)

    workers = [threading.Thread(target=make) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(made) == 4
    assert all(captchas.check(c.token, ANSWER) for c in made)


# -- the setting ------------------------------------------------------------------------------


def _environ(tmp_path: object, **values: str) -> dict[str, str]:
    environ = {"SOAP_SERVICE_DATA_DIR": str(tmp_path)}
    environ.update({f"SOAP_SERVICE_{name}": value for name, value in values.items()})
    return environ


@pytest.mark.parametrize("public_url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
def test_the_test_captcha_is_read_with_a_loopback_public_url(tmp_path: object, public_url: str) -> None:
    settings = load_settings(_environ(tmp_path, TEST_CAPTCHA="12345", PUBLIC_URL=public_url))
    assert settings.test_captcha == "12345"


def test_the_test_captcha_is_unset_by_default(tmp_path: object) -> None:
    assert load_settings(_environ(tmp_path)).test_captcha is None


@pytest.mark.parametrize("public_url", ["https://ca.example.com", "http://10.0.0.5:8080", "http://192.0.2.1"])
def test_the_test_captcha_is_refused_with_another_public_url(tmp_path: object, public_url: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        load_settings(_environ(tmp_path, TEST_CAPTCHA="12345", PUBLIC_URL=public_url))


@pytest.mark.parametrize("value", ["1234a", "1234", "123456", "١٢٣٤٥", " 1234"])
def test_the_test_captcha_is_five_digits(tmp_path: object, value: str) -> None:
    with pytest.raises(ConfigurationError, match="five digits"):
        load_settings(_environ(tmp_path, TEST_CAPTCHA=value, PUBLIC_URL="http://127.0.0.1:8080"))


def test_a_fixed_answer_is_stored_hashed_like_any_other(ra: RegistrationAuthority) -> None:
    captchas = Captchas(_fixed(ra))
    challenge = captchas.new()
    row = _row(ra, challenge.token)
    assert row is not None
    assert row.answer_hash == hashlib.sha256(f"{challenge.token}\n{ANSWER}".encode()).hexdigest()
    assert isinstance(row.created_at, datetime)
