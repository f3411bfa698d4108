"""Schemathesis hooks for tests/contract.rs (loaded as SCHEMATHESIS_HOOKS=hooks).

`timeStamp` and its alias `time` are two optional query parameters that
must agree when both are given (else 400): OpenAPI cannot say so, and cases
generated with two different times would mostly test that one refusal.
Where a thumbnail case carries both, `time` takes `timeStamp`'s value, so
the generated cases reach rendering.
"""

import schemathesis


@schemathesis.hook
def map_query(context, query):
    operation = getattr(context, "operation", None)
    path = getattr(operation, "path", "") or ""
    if (
        path.startswith("/v1/thumbnail/")
        and isinstance(query, dict)
        and "time" in query
        and "timeStamp" in query
    ):
        query = dict(query)
        query["time"] = query["timeStamp"]
    return query
