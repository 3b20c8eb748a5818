"""Standard Webhooks signatures: the published test vector, and what receivers get, recomputed here.

Deliveries go to a real receiver on loopback (see ``webhook_doubles``); each signature is
checked by recomputing the HMAC in ``standard_webhooks_signature``, never by calling ``sign``.
"""

from __future__ import annotations

import base64

import pytest

from jobs.targets.http.signing import sign
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
