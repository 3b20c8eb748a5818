"""The client's address, the one way throttles and the admin login's lockout both see it."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or with ``JOBSCHEDULER_TRUSTED_PROXY_COUNT`` = N, X-Forwarded-For's N-th from the right.

    DRF's throttles compute it from ``NUM_PROXIES`` (which settings set to the same count);
    this reuses that computation so a login attempt and an API call from one client are
    counted against the same address.
    """
    return BaseThrottle().get_ident(Request(request))
