"""Http targets (webhooks): what a target may hold, and its delivery to vetted addresses only.

``request`` reads a target the same way when a job is saved and when it is delivered,
``addresses`` is the address policy, ``signing`` the Standard Webhooks signature,
``transport`` the delivery itself, over ``connections`` (kept-alive urllib3 pools that dial
vetted addresses only) within ``deadlines`` (one watchdog thread for every delivery).
"""

from __future__ import annotations

from jobs.targets.http.request import FIELDS, HTTP_METHODS, MAX_BODY_CHARS, clean
from jobs.targets.http.transport import DeliveryResult, deliver

__all__ = ["FIELDS", "HTTP_METHODS", "MAX_BODY_CHARS", "DeliveryResult", "clean", "deliver"]
