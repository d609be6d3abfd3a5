"""What may be shown of URLs and upstream text: credentials, tokens and keys masked."""

from __future__ import annotations

import io
import logging

from reconciler.redaction import (
    RedactingFormatter,
    redact_handlers,
    redact_text,
    redact_uri,
    url_secrets,
    without_surrogates,
)


def test_urls_lose_their_credentials_and_secret_query_values() -> None:
    assert redact_uri("http://user:pass@127.0.0.1:9/v1") == "http://***@127.0.0.1:9/v1"
    assert (
        redact_uri("https://api.example/v1?api_key=abc&region=eu&sig=xyz")
        == "https://api.example/v1?api_key=***&region=eu&sig=***"
    )
    assert redact_uri("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"


def test_text_from_upstream_is_masked_wherever_a_secret_sits_in_it() -> None:
    text = (
        "GET http://u:p@host/v1/models failed; echoed 'Authorization: Bearer sk-live-abc123def456' "
        "and x-api-key: hunter2, key ghp_0123456789abcdefABCD in the body"
    )
    redacted = redact_text(text)
    for secret in ("u:p@", "sk-live-abc123def456", "hunter2", "ghp_0123456789abcdefABCD"):
        assert secret not in redacted
    assert "http://***@host/v1/models" in redacted and "Bearer ***" in redacted
    # Ordinary words that merely contain a prefix stay as they are.
    assert redact_text("the task-runner asked for a desk-lamp") == (
        "the task-runner asked for a desk-lamp"
    )


def test_secrets_in_a_url_are_named_never_shown() -> None:
    found = url_secrets("https://player:hunter2@api.example/v1?token=abc")
    assert found == ["credentials before the host (user:password@)", "the query parameter 'token'"]
    assert not any("hunter2" in item or "abc" in item for item in found)
    assert url_secrets("https://api.openai.example/v1") == []


def test_lone_surrogates_become_replacement_characters() -> None:
    assert without_surrogates("a\ud800b") == "a\ufffdb"
    assert without_surrogates("a\U0001f600b") == "a\U0001f600b"  # a real pair is kept


def test_log_lines_and_their_tracebacks_are_redacted() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.redaction")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_handlers(logger)
        redact_handlers(logger)  # idempotent: wrapped once
        assert isinstance(handler.formatter, RedactingFormatter)
        try:
            raise ConnectionError("cannot reach http://bob:s3cret@provider.example/v1")
        except ConnectionError:
            logger.exception("provider at %s failed", "http://bob:s3cret@provider.example/v1")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "s3cret" not in written
    assert written.startswith("ERROR provider at http://***@provider.example/v1 failed")
    assert "ConnectionError: cannot reach http://***@provider.example/v1" in written
    assert not isinstance(handler.formatter.inner, RedactingFormatter)
