"""The S3 server the S3 tests use: moto's standalone server on 127.0.0.1, or the store at
DGEN_S3_TEST_ENDPOINT (or AWS_ENDPOINT_URL) with the credentials of the environment and
the bucket DGEN_S3_TEST_BUCKET (docs/s3.md). Test modules import the fixtures."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

EXTERNAL = os.environ.get("DGEN_S3_TEST_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")


@pytest.fixture(scope="session")
def server():
    """(endpoint URL, bucket, environment for the client)."""
    if EXTERNAL:
        env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN", "AWS_REGION",
                                           "AWS_DEFAULT_REGION") if k in os.environ}
        yield EXTERNAL, os.environ.get("DGEN_S3_TEST_BUCKET", "dgen-test"), env
        return
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1"}
    _client(url, env).create_bucket(Bucket="dgen-test")
    yield url, "dgen-test", env
    srv.stop()


def _client(url, env):
    import boto3
    return boto3.client("s3", endpoint_url=url, region_name=env.get("AWS_REGION", "us-east-1"),
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture
def s3(server, monkeypatch):
    """A fresh prefix URL in the test bucket, the client settings in the environment."""
    url, bucket, env = server
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return f"s3://{bucket}/t-{uuid.uuid4().hex[:12]}"


def get(url) -> bytes:
    """The object at url (the client settings in the environment)."""
    import obstore
    from dgen_py.s3 import _store, open_store
    bucket, key = _store.parse_url(url)
    return bytes(obstore.get(open_store(bucket), key).bytes())


def put(url, data) -> None:
    import obstore
    from dgen_py.s3 import _store, open_store
    bucket, key = _store.parse_url(url)
    obstore.put(open_store(bucket), key, data, use_multipart=False)
