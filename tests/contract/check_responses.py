"""Checks recorded responses against thumbd's OpenAPI description.

Used by tests/contract.rs, which makes the requests (some need special
servers: a tiny byte budget, a full render queue, a server shutting down)
and hands over what came back:

    check_responses.py SPEC.json OBSERVATIONS.json [PATH ...]

SPEC.json is the document as the server served it. OBSERVATIONS.json is a
list of objects:

    {"name": "...", "method": "GET", "operation": "/v1/thumbnail/{org}/{env}/{file}",
     "status": 200, "headers": {"content-type": ["image/webp"], ...},
     "body": "<text>" or null (not UTF-8), "body_len": 1234}

`operation` is a path template of the document (the response is looked up
under that path, method and status), or a JSON pointer such as
`#/components/responses/MethodNotAllowed` for answers to methods the
document does not list.

The document must be valid OpenAPI 3.1. For each observation: the status
must be documented; every required header must be present and every
documented header must match its schema; the Content-Type must be one the
response documents (and there must be no body where it documents none;
none for HEAD); JSON bodies must match their schema. Finally, every
status code the document mentions anywhere must have been observed at
least once, every status code one of the PATHs given documents (for any
of its methods) must have been observed for that path, and every response
kept under `components/responses` must have been produced. Prints one
line per failure; exit status 1 if there is any.
"""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:thumbd:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def pointer_get(doc, pointer):
    node = doc
    for part in pointer.lstrip("#").split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def escape(part):
    return part.replace("~", "~0").replace("/", "~1")


class Spec:
    def __init__(self, doc):
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(BASE, resource)
        # Pointers of the responses, headers and schemas looked at.
        self.visited = set()

    def resolve(self, node, pointer):
        """Follows `$ref`s; returns the node and its JSON pointer."""
        seen = set()
        self.visited.add(pointer)
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            pointer = node["$ref"]
            if pointer in seen or not pointer.startswith("#/"):
                raise ValueError(f"cannot resolve {pointer}")
            seen.add(pointer)
            self.visited.add(pointer)
            node = pointer_get(self.doc, pointer)
        return node, pointer

    def errors(self, instance, pointer):
        """Validation errors of `instance` against the schema at `pointer`."""
        validator = Draft202012Validator({"$ref": BASE + pointer}, registry=self.registry)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]


def documented_statuses(path_item):
    """The statuses any method of a path documents."""
    statuses = set()
    for method in HTTP_METHODS:
        statuses.update(path_item.get(method, {}).get("responses", {}).keys())
    return statuses


def unproduced(doc, observations, strict_paths):
    """Lines for documented statuses no observation produced."""
    lines = []
    seen = {str(o["status"]) for o in observations}
    everywhere = set().union(*map(documented_statuses, doc.get("paths", {}).values()))
    for status in sorted(everywhere - seen):
        lines.append(f"status {status} is documented but no request in the table produced it")
    for path in strict_paths:
        path_item = doc.get("paths", {}).get(path)
        if path_item is None:
            lines.append(f"the document has no path {path}")
            continue
        seen = {str(o["status"]) for o in observations if o["operation"] == path}
        for status in sorted(documented_statuses(path_item) - seen):
            lines.append(f"{path}: status {status} is documented but no request in the table produced it")
    return lines


def header_value(value, schema):
    """A header's text as the instance its schema describes."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds and value.strip().isdigit():
        return int(value.strip())
    return value


def check(spec, obs):
    name = f"{obs['name']} ({obs['method']} -> {obs['status']})"
    failures = []
    status = str(obs["status"])
    method = obs["method"].lower()
    operation = obs["operation"]
    if operation.startswith("#/"):
        response, rpointer = spec.resolve(pointer_get(spec.doc, operation), operation)
    else:
        path_item = spec.doc["paths"].get(operation)
        if path_item is None:
            return [f"{name}: the document has no path {operation}"]
        if method not in path_item:
            return [f"{name}: the document has no {method.upper()} {operation}"]
        responses = path_item[method].get("responses", {})
        key = next(
            (k for k in (status, status[0] + "XX", "default") if k in responses),
            None,
        )
        if key is None:
            return [
                f"{name}: status {status} is not documented for {method.upper()} {operation} "
                f"(documented: {', '.join(sorted(responses))})"
            ]
        rpointer = f"#/paths/{escape(operation)}/{method}/responses/{key}"
        response, rpointer = spec.resolve(responses[key], rpointer)

    headers = {k.lower(): v for k, v in obs["headers"].items()}
    for hname, header in response.get("headers", {}).items():
        if hname.lower() == "content-type":
            continue
        hpointer = f"{rpointer}/headers/{escape(hname)}"
        header, hpointer = spec.resolve(header, hpointer)
        values = headers.get(hname.lower())
        if not values:
            if header.get("required"):
                failures.append(f"{name}: required header {hname} is missing")
            continue
        schema, spointer = spec.resolve(header.get("schema", {}), hpointer + "/schema")
        for err in spec.errors(header_value(values[0], schema), spointer):
            failures.append(f"{name}: header {hname}: {values[0]!r}: {err}")

    content = response.get("content")
    content_type = (headers.get("content-type") or [None])[0]
    has_body = obs["body_len"] > 0
    if method == "head" and has_body:
        failures.append(f"{name}: a HEAD answer has a body")
    if not content:
        if has_body:
            failures.append(f"{name}: the document describes no body, but {obs['body_len']} bytes came")
        return failures
    if content_type is None:
        return failures + [f"{name}: no Content-Type (documented: {', '.join(content)})"]
    media = content_type.split(";")[0].strip().lower()
    documented = {k.lower(): k for k in content}
    key = documented.get(media) or documented.get(media.split("/")[0] + "/*") or documented.get("*/*")
    if key is None:
        return failures + [
            f"{name}: Content-Type {content_type} is not documented (documented: {', '.join(content)})"
        ]
    if method == "head" or not (media == "application/json" or media.endswith("+json")):
        return failures
    if obs["body"] is None:
        return failures + [f"{name}: the {media} body is not UTF-8"]
    try:
        body = json.loads(obs["body"])
    except ValueError as e:
        return failures + [f"{name}: the {media} body is not JSON ({e}): {obs['body'][:200]!r}"]
    media_pointer = f"{rpointer}/content/{escape(key)}"
    schema, spointer = spec.resolve(content[key].get("schema", {}), media_pointer + "/schema")
    for err in spec.errors(body, spointer):
        failures.append(f"{name}: body: {err}; body was {obs['body'][:300]}")
    return failures


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = Spec(json.load(f))
    with open(sys.argv[2]) as f:
        observations = json.load(f)
    failures = []
    try:
        validate_openapi(spec.doc)
    except Exception as e:  # the validator's errors have no common base
        failures.append(f"the document is not valid OpenAPI: {e}")
    for obs in observations:
        failures += check(spec, obs)
    failures += unproduced(spec.doc, observations, sys.argv[3:])
    for response in spec.doc.get("components", {}).get("responses", {}):
        if "#/components/responses/" + response not in spec.visited:
            failures.append(f"no request in the table produced #/components/responses/{response}")
    for line in failures:
        print(line)
    print(f"{len(observations)} responses checked against the description: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
