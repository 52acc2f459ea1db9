"""Schemathesis hooks for Fieldcast's contract test (tests/contract.rs).

- A WHEP offer is an SDP document (application/sdp): text, sent as generated.
- Every order attempt gets an Idempotency-Key of its own, as a client makes one per attempt,
  and carries no buyer token (below).
  Generated keys repeat ("0", "00…"), and a key reused with another body is refused 422 as
  the Idempotency-Key draft asks: that is the contract, but not what a generated request means.
"""
import uuid

import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")


@schemathesis.hook
def map_headers(context, headers):
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    # A buyer token is a JWT signed by the shop's login: generated text never verifies (401,
    # as documented), so orders would never reach the ledger. tests/selling.rs covers tokens.
    if headers:
        headers.pop("Fieldcast-Buyer", None)
    return headers
