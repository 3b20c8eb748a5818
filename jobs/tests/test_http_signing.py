"""Standard Webhooks signatures: the published test vector, and what receivers get, recomputed here.

Deliveries go to a real receiver on loopback (see ``webhook_doubles``); each signature is
checked by recomputing the HMAC in ``standard_webhooks_signature``, never by calling ``sign``.
"""

from __future__ import annotations

import base64

import pytest

from jobs.targets.http.signing import generate_secret, sign
from jobs.tests.webhook_doubles import FIRE_KEY, Receiver, send, standard_webhooks_signature

pytestmark = pytest.mark.usefixtures("no_allow_list")


def test_whsec_secrets_sign_with_the_decoded_key(receiver: Receiver, allow_loopback: None) -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    assert send(f"http://127.0.0.1:{receiver.port}/", secret=secret, body="{}").ok

    (received,) = receiver.requests
    assert received.header("webhook-signature") == standard_webhooks_signature(key, received)
    assert received.header("webhook-signature") != standard_webhooks_signature(secret.encode(), received)


def test_sign_reproduces_the_published_standard_webhooks_vector() -> None:
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_no_secret_means_no_signature_header(receiver: Receiver, allow_loopback: None) -> None:
    assert send(f"http://127.0.0.1:{receiver.port}/", secret="").ok
    (received,) = receiver.requests
    assert received.header("webhook-signature") is None
    assert received.header("webhook-id") == FIRE_KEY


def test_a_bad_whsec_secret_is_reported(receiver: Receiver, allow_loopback: None) -> None:
    result = send(f"http://127.0.0.1:{receiver.port}/", secret="whsec_not*base64")
    assert result.error == "refused: the job's whsec_ secret is not valid base64"
    assert receiver.requests == []


# --- Generated secrets and rotation ----------------------------------------------------------------


def test_generated_secrets_are_standard_webhooks_secrets_of_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_during_a_rotation_each_secret_signs_in_one_header(receiver: Receiver, allow_loopback: None) -> None:
    new_key, old_key = bytes(range(32)), bytes(range(32, 64))
    new, old = ("whsec_" + base64.b64encode(key).decode() for key in (new_key, old_key))
    assert send(f"http://127.0.0.1:{receiver.port}/", secret=[new, old], body='{"a": 1}').ok

    (received,) = receiver.requests
    expected = [standard_webhooks_signature(new_key, received), standard_webhooks_signature(old_key, received)]
    assert received.header("webhook-signature") == " ".join(expected)


def test_empty_secrets_in_a_list_sign_nothing(receiver: Receiver, allow_loopback: None) -> None:
    assert send(f"http://127.0.0.1:{receiver.port}/", secret=["", ""]).ok
    assert receiver.requests[0].header("webhook-signature") is None
