"""Schemathesis hooks for tests/contract.rs (loaded as SCHEMATHESIS_HOOKS=hooks).

Some optional query parameters exclude or must agree with one another,
which OpenAPI cannot say; cases generated against those rules would mostly
test that one refusal (400) instead of reaching rendering:

- a thumbnail's `timeStamp` and its alias `time` must agree when both are
  given: where a generated case carries both, `time` takes `timeStamp`'s
  value;
- a storyboard takes `tiles` or `interval`, not both: where a case carries
  both, one is dropped (chosen by the last character of `tiles`, so both
  kinds reach rendering). This runs just before each call, so it also
  covers the coverage phase, whose cases (every parameter at its example)
  do not pass through `map_query`.
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


@schemathesis.hook
def before_call(context, case, **kwargs):
    query = case.query
    if (
        case.operation.path.startswith("/v1/storyboard/")
        and isinstance(query, dict)
        and "tiles" in query
        and "interval" in query
    ):
        query = dict(query)
        del query["interval" if str(query["tiles"])[-1:] in "02468" else "tiles"]
        case.query = query
