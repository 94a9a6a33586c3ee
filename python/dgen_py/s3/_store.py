"""s3:// URLs, the store they name, and the settings users already have for S3 clients.

The client is obstore (the Rust object_store crate), an optional dependency: `pip install
'dgen-py[s3]'`. Settings come from the environment, as the AWS CLI and SDKs read them:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (else
AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL) for a store other
than AWS. Plain http is used only when the endpoint URL says http://.
"""

from __future__ import annotations

import datetime
import os
import re

from .. import manifest as manifests

SCHEME = "s3://"
MANIFEST_NAME = manifests.MANIFEST_NAME      # beside the objects of a prefix
MANIFEST_SUFFIX = manifests.MANIFEST_SUFFIX  # beside a single object
# Bucket names as S3 allows them (3-63 of a-z 0-9 . -); dgen refuses others before any request.
BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
MIN_PART = 5 << 20  # S3 refuses smaller parts (but the last)
MAX_PART = 5 << 30
MAX_PARTS = 10_000  # S3's limit on the parts of one object


class ConfigError(ValueError):
    """A setting the store needs is missing or malformed (it names the setting)."""


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key; key is "" for the bucket itself and ends with /
    for a prefix named with a trailing slash."""
    if not is_url(url):
        raise ValueError(f"url must start with {SCHEME}, got {url!r}")
    bucket, _, key = url[len(SCHEME):].partition("/")
    if not BUCKET.fullmatch(bucket):
        raise ValueError(f"url {url!r}: the bucket name must be 3 to 63 characters of a-z, "
                         f"0-9, '.' and '-', got {bucket!r}")
    if "//" in key or key.startswith("/") or any(p in (".", "..") for p in key.split("/")):
        raise ValueError(f"url {url!r}: the key may not hold empty, '.' or '..' parts")
    return bucket, key


def join(prefix: str, name: str) -> str:
    """The key of `name` under a prefix ("" is the bucket's top)."""
    return f"{prefix.rstrip('/')}/{name}" if prefix.strip("/") else name


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def settings() -> dict:
    """The store's settings from the environment; ConfigError naming what is missing."""
    key, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        missing = " and ".join(n for n, v in (("AWS_ACCESS_KEY_ID", key),
                                               ("AWS_SECRET_ACCESS_KEY", secret)) if not v)
        raise ConfigError(f"S3 credentials: {missing} is not set (set AWS_ACCESS_KEY_ID and "
                          f"AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for temporary ones)")
    endpoint = _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    region = _env("AWS_REGION", "AWS_DEFAULT_REGION")
    if endpoint is None and region is None:
        raise ConfigError("S3 region: AWS_REGION (or AWS_DEFAULT_REGION) is not set; set it, "
                          "or AWS_ENDPOINT_URL for a store other than AWS")
    if endpoint is not None and not re.fullmatch(r"https?://[^/\s]+/?", endpoint):
        raise ConfigError(f"AWS_ENDPOINT_URL(_S3) must be http://HOST[:PORT] or "
                          f"https://HOST[:PORT], got {endpoint!r}")
    out = {"access_key_id": key, "secret_access_key": secret,
           "region": region or "us-east-1", "endpoint": endpoint}
    if _env("AWS_SESSION_TOKEN"):
        out["session_token"] = _env("AWS_SESSION_TOKEN")
    return out


def open_store(bucket: str, *, retries: int | None = None, timeout: float | None = None):
    """An obstore S3Store of `bucket` with the environment's settings. retries (None: the
    client's default, 10 within 3 minutes) and timeout (seconds per request; None: 30 s
    without a reply) bound how long a failing store is tried."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise ImportError("s3:// needs the obstore package: pip install 'dgen-py[s3]'") \
            from None
    given = settings()
    endpoint = given.pop("endpoint")
    client = {"allow_http": bool(endpoint and endpoint.startswith("http://"))}
    if timeout is not None:
        client["timeout"] = datetime.timedelta(seconds=timeout)
        client["connect_timeout"] = datetime.timedelta(seconds=min(timeout, 10))
    retry = None
    if retries is not None:
        retry = {"max_retries": retries, "retry_timeout": datetime.timedelta(seconds=60),
                 "backoff": {"init_backoff": datetime.timedelta(milliseconds=50),
                             "max_backoff": datetime.timedelta(seconds=2), "base": 2}}
    config = {**given, **({"endpoint": endpoint.rstrip("/")} if endpoint else {})}
    return S3Store(bucket, config=config, client_options=client, retry_config=retry)


def described(e: BaseException) -> str:
    """One line of an obstore error (its text runs over several lines)."""
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:400] + " ..."
