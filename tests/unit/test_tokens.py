"""Service tokens checked in two steps: the head before the body is read, then the body."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from eas_core.auth.tokens import HeadAuth, body_matches, is_fresh, sign, verify_head
from eas_core.config import SIGNATURE_MAX_SKEW


def test_head_is_verified_before_the_body_and_the_body_after() -> None:
    body = b"the body"
    signed = {k.lower(): v for k, v in sign("tok", body, "/api/predict/svc").items()}
    assert verify_head("tok", signed, path="/api/predict/svc") is HeadAuth.SIGNED
    assert body_matches(signed, body)
    assert not body_matches(signed, b"another body")
    tampered = signed | {"content-md5": hashlib.md5(b"another body").hexdigest()}
    # The signature covers the Content-MD5 header, so changing it is caught on the head.
    assert verify_head("tok", tampered, path="/api/predict/svc") is HeadAuth.DENIED
    assert verify_head("tok", {"authorization": "tok"}, path="/x") is HeadAuth.GRANTED
    assert verify_head("tok", {"authorization": "nope"}, path="/x") is HeadAuth.DENIED
    assert verify_head("tok", {}, path="/x") is HeadAuth.DENIED
    assert verify_head(None, {}, path="/x") is HeadAuth.GRANTED


def at(offset: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + offset, usegmt=True)


def test_signed_date_must_parse_and_fall_within_the_window() -> None:
    window = SIGNATURE_MAX_SKEW

    def verdict(date: str, max_skew: float | None = window) -> HeadAuth:
        headers = {k.lower(): v for k, v in sign("tok", b"", "/p", date=date).items()}
        return verify_head("tok", headers, path="/p", max_skew=max_skew)

    assert window == 15 * 3600
    assert verdict(at(timedelta(0))) is HeadAuth.SIGNED
    # The official SDK labels its local time GMT: every time zone, -12 h to +14 h, fits.
    assert verdict(at(timedelta(hours=14))) is HeadAuth.SIGNED
    assert verdict(at(timedelta(hours=-12))) is HeadAuth.SIGNED
    assert verdict(at(timedelta(hours=-16))) is HeadAuth.DENIED
    assert verdict(at(timedelta(days=-1))) is HeadAuth.DENIED
    assert verdict("not a date at all") is HeadAuth.DENIED
    # With the window off (0), a day-old date passes, an unreadable one still does not.
    assert verdict(at(timedelta(days=-1)), 0) is HeadAuth.SIGNED
    assert verdict("not a date at all", 0) is HeadAuth.DENIED
    assert not is_fresh("", 60)
    # A date is parsed once, but its age is measured at every check.
    five_seconds_ago = at(timedelta(seconds=-5))
    assert is_fresh(five_seconds_ago, 60)
    assert not is_fresh(five_seconds_ago, 1)
