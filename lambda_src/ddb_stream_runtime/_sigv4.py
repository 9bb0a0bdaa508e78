"""SigV4 request signing shared by the handlers that call OpenSearch over HTTPS.

The indexer, the backfill and the role-mapping provider sign their requests the same
way: botocore's ``SigV4Auth`` over the exact method, URL and body that urllib then
sends. Kept apart from the handlers so that importing one never imports another
(cold start), and botocore is imported on first use only (~200 ms).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

__all__ = ["MissingCredentialsError", "SigV4Signer", "botocore_session"]


class MissingCredentialsError(RuntimeError):
    """botocore's credential chain found no credentials."""


@functools.cache
def botocore_session() -> Any:
    """botocore, imported and set up on first use only (it costs ~200 ms of cold start)."""
    import botocore.session

    return botocore.session.get_session()


class SigV4Signer:
    """Sign requests for one service (``es`` or ``aoss``) in one region.

    Parameters
    ----------
    region : str
        The signing region.
    service : str
        The signing name: ``es`` for OpenSearch Service, ``aoss`` for Serverless.
    credentials : botocore Credentials, optional
        Default: botocore's credential chain, resolved on first use (and refreshed by
        botocore when they are temporary).

    Examples
    --------
    >>> from botocore.credentials import Credentials
    >>> signer = SigV4Signer("eu-west-1", "es", Credentials("AKID", "secret"))
    >>> headers = signer.headers("GET", "https://search.example/_plugins/_security/api/account")
    >>> headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    True
    """

    def __init__(self, region: str, service: str, credentials: Any = None) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials

    def headers(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The request's headers, ``headers`` included, with its SigV4 signature added.

        The payload hash is sent as ``X-Amz-Content-SHA256`` (OpenSearch Serverless
        requires it; OpenSearch Service accepts it).

        Raises
        ------
        MissingCredentialsError
            If no credentials were given and botocore's chain finds none.
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if self._credentials is None:
            self._credentials = botocore_session().get_credentials()
            if self._credentials is None:
                raise MissingCredentialsError("no aws credentials found")
        frozen = getattr(self._credentials, "get_frozen_credentials", None)
        credentials = frozen() if frozen is not None else self._credentials
        request = AWSRequest(
            method=method,
            url=url,
            data=body,
            headers={**(headers or {}), "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
        )
        SigV4Auth(credentials, self.service, self.region).add_auth(request)
        return dict(request.headers.items())
