"""The /graphql endpoint's input boundary: what a request must be to reach the schema.

A request is read here, once, and refused with an RFC 9457 problem
(web.problems) when it is not a GraphQL request — never with a 500 and
never half-read by a later encoder:

- the body is JSON (RFC 8259) in UTF-8, numbers within Python's integer
  conversion limit (4300 digits), nested no deeper than the interpreter can
  read; the GET query string is UTF-8 once percent-decoded;
- the request is one JSON object (batching is not enabled) whose `query` and
  `operationName` are strings or null and `variables` / `extensions` objects
  or null;
- every text in it — the document, the operation name, every variable value
  and key — is Unicode: a lone UTF-16 surrogate (`"\\ud800"`, legal in JSON,
  not a character) cannot be stored, hashed or sent on, so such a request is
  refused as a whole (`request-malformed`, naming where), with or without a
  token, before anything runs.

Everything else strawberry refuses at the HTTP level (a GET of a mutation, a
subscription by POST, a missing query, ...) is rendered as a problem too
(`problem_for`): `request-malformed` (cannot be read) and `request-refused`
(read, but not a request the endpoint runs) with code BAD_REQUEST, and the
status's own type otherwise (`unsupported-media-type` 415,
`method-not-allowed` 405 with `Allow`).

A graphql-transport-ws frame is read by the same rules (`decode_frame`); one
that breaks them closes the socket with 4400, the protocol's answer to an
invalid message.
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from cross_web import HTTPException
from strawberry.http import GraphQLRequestData

from web.problems import BAD_REQUEST, Problem, malformed

__all__ = [
    "RequestRefused",
    "check_query_string",
    "decode_frame",
    "decode_json",
    "graphql_request",
    "problem_for",
    "refuse_non_unicode",
]


class RequestRefused(HTTPException):
    """An HTTP-level refusal that carries its problem detail."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.status, problem.detail)
        self.problem = problem


def _refused(detail: str) -> RequestRefused:
    return RequestRefused(malformed(detail))


def decode_json(data: str | bytes) -> object:
    """The JSON value of `data` (bytes: UTF-8), or RequestRefused saying what is wrong.

    Stricter than `json.loads` on bytes, which would guess UTF-16/32: RFC 8259
    §8.1 says JSON exchanged between systems is UTF-8."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise _refused(
            f"the request body is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})"
        ) from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # some of json's messages end in "at" ("Unterminated string starting at")
        where = "offset" if exc.msg.endswith(" at") else "at offset"
        raise _refused(f"the request is not valid JSON: {exc.msg} {where} {exc.pos}") from exc
    except ValueError as exc:  # int(): more digits than Python converts
        raise _refused(
            f"the request holds a number of more than {sys.get_int_max_str_digits()} digits"
        ) from exc
    except RecursionError as exc:
        raise _refused("the request is JSON nested too deeply to read") from exc
    return value


def decode_frame(text: str | bytes) -> object:
    """The JSON of a WebSocket frame, read like a request (`decode_json`, and
    Unicode throughout); anything else raises JSONDecodeError, on which
    strawberry closes the socket with 4400 as graphql-transport-ws prescribes."""
    try:
        value = decode_json(text)
        refuse_non_unicode(value)
    except RequestRefused as exc:
        raise json.JSONDecodeError(exc.problem.detail, "", 0) from exc
    return value


def refuse_non_unicode(value: object, where: str = "") -> None:
    """RequestRefused naming the first text in `value` (strings and object keys,
    at any depth) that holds a UTF-16 surrogate, which no encoder accepts."""
    stack: list[tuple[object, str]] = [(value, where)]
    while stack:  # iterative: depth is bounded by the JSON reader, not by this
        item, path = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                raise _refused(f"{path or 'the request'} is not valid Unicode (a lone surrogate)")
        elif isinstance(item, dict):
            for key, member in item.items():
                member_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not _is_unicode(key):
                    raise _refused(f"a key in {path or 'the request'} is not valid Unicode")
                stack.append((member, member_path))
        elif isinstance(item, list):
            stack.extend((member, f"{path}[{index}]") for index, member in enumerate(item))


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_query_string(raw: bytes) -> None:
    """RequestRefused unless the GET query string is UTF-8 once percent-decoded
    (Starlette would silently replace such bytes with U+FFFD)."""
    try:
        parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise _refused("the query string is not valid UTF-8 once percent-decoded") from exc


_MEMBER_TYPES: dict[str, tuple[type, str]] = {
    "query": (str, "a string"),
    "operationName": (str, "a string"),
    "variables": (dict, "an object"),
    "extensions": (dict, "an object"),
}


def graphql_request(data: object) -> GraphQLRequestData:
    """The GraphQL request of a decoded body (or GET parameters), or
    RequestRefused when it is not one object with members of the right types."""
    if isinstance(data, list):
        raise _refused("batching is not enabled: send one GraphQL request object, not an array")
    if not isinstance(data, dict):
        raise _refused(
            f"the request must be a JSON object (a GraphQL request), not {_json_kind(data)}"
        )
    for member, (kind, name) in _MEMBER_TYPES.items():
        value = data.get(member)
        if value is not None and not isinstance(value, kind):
            raise _refused(f"`{member}` must be {name} or null, not {_json_kind(value)}")
    refuse_non_unicode(data)
    return GraphQLRequestData(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=data.get("extensions"),
        protocol="http",
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def problem_for(exc: HTTPException) -> Problem:
    """The problem detail of any HTTP-level refusal (strawberry's own included)."""
    if isinstance(exc, RequestRefused):
        return exc.problem
    try:
        status = HTTPStatus(exc.status_code)
    except ValueError:
        status = HTTPStatus.BAD_REQUEST
    if status == HTTPStatus.BAD_REQUEST:
        return Problem(400, "request-refused", "Request refused", exc.reason, BAD_REQUEST)
    extra = ((b"allow", b"GET, POST"),) if status == HTTPStatus.METHOD_NOT_ALLOWED else ()
    return Problem(
        status.value,
        status.phrase.lower().replace(" ", "-"),
        status.phrase,
        exc.reason,
        status.name,
        extra_headers=extra,
    )
